-- Text search of the ledger (`q`: matter, applicant, address, responsible
-- person, feedback) without reading every row. Chinese words are mostly two
-- characters (路灯, 低保), which trigram indexes (`pg_trgm`) do not serve,
-- so the index here is of two-character pieces ("bigrams") of each column.
-- A petition contains the searched text only if it has every bigram of it,
-- so the bigrams narrow the rows and `LIKE` still decides; a search of
-- exactly two characters matches exactly the rows that have its one bigram.
-- docs/BENCHMARKS.md has the figures (`tests/benches/ledger_scale.rs`).

-- The distinct two-character pieces of each part, never across two parts.
-- Characters, not bytes: substr counts characters in a UTF-8 database.
CREATE FUNCTION ledger_text_grams(VARIADIC parts TEXT[]) RETURNS TEXT[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    grams TEXT[] := '{}';
    part TEXT;
    gram TEXT;
BEGIN
    FOREACH part IN ARRAY parts LOOP
        FOR i IN 1 .. COALESCE(length(part), 0) - 1 LOOP
            gram := substr(part, i, 2);
            IF gram <> ALL (grams) THEN
                grams := grams || gram;
            END IF;
        END LOOP;
    END LOOP;
    RETURN grams;
END
$$;

-- The bigrams of the text that a `LIKE` pattern of the server's
-- (`like_pattern`: `%`, the text with `%`, `_` and `\` escaped by `\`, `%`)
-- looks for, so the statements test the index with the pattern they bind.
CREATE FUNCTION ledger_pattern_grams(pattern TEXT) RETURNS TEXT[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ledger_text_grams(
        regexp_replace(substr(pattern, 2, length(pattern) - 2), '\\(.)', '\1', 'g'));

-- Which live petitions have a bigram: finds the rows of a rare word or name.
CREATE INDEX ledger_petitions_live_text ON ledger_petitions USING gin (
    ledger_text_grams(matter, applicant_name, responsible, applicant_address, feedback))
    WHERE NOT deleted;

-- How many live petitions of each unit have a bigram: the exact total of a
-- two-character search, and for longer ones a bound that tells whether the
-- index or a walk through the newest rows finds a page sooner. Kept like
-- `ledger_counts`: statement triggers insert differences, the server folds
-- them (`Store::fold_ledger_counts`).
CREATE TABLE ledger_gram_counts (
    unit_id BIGINT NOT NULL,
    gram    TEXT   NOT NULL,
    n       BIGINT NOT NULL
);
CREATE INDEX ledger_gram_counts_key ON ledger_gram_counts (gram, unit_id) INCLUDE (n);

INSERT INTO ledger_gram_counts (unit_id, gram, n)
SELECT p.unit_id, g.gram, COUNT(*)
FROM ledger_petitions p,
     unnest(ledger_text_grams(p.matter, p.applicant_name, p.responsible,
                              p.applicant_address, p.feedback)) AS g (gram)
WHERE NOT p.deleted
GROUP BY p.unit_id, g.gram;

CREATE FUNCTION ledger_gram_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ledger_gram_counts (unit_id, gram, n)
        SELECT r.unit_id, g.gram, COUNT(*)
        FROM new_rows r,
             unnest(ledger_text_grams(r.matter, r.applicant_name, r.responsible,
                                      r.applicant_address, r.feedback)) AS g (gram)
        WHERE NOT r.deleted
        GROUP BY r.unit_id, g.gram;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ledger_gram_counts (unit_id, gram, n)
        SELECT r.unit_id, g.gram, -COUNT(*)
        FROM old_rows r,
             unnest(ledger_text_grams(r.matter, r.applicant_name, r.responsible,
                                      r.applicant_address, r.feedback)) AS g (gram)
        WHERE NOT r.deleted
        GROUP BY r.unit_id, g.gram;
    ELSE
        -- Most updates change a status, not the text: their rows cancel out
        -- and nothing is written.
        INSERT INTO ledger_gram_counts (unit_id, gram, n)
        SELECT c.unit_id, g.gram, SUM(c.d)
        FROM (
            SELECT unit_id, matter, applicant_name, responsible, applicant_address,
                   feedback, -1 AS d
            FROM old_rows WHERE NOT deleted
            UNION ALL
            SELECT unit_id, matter, applicant_name, responsible, applicant_address,
                   feedback, 1 AS d
            FROM new_rows WHERE NOT deleted
        ) AS c,
        unnest(ledger_text_grams(c.matter, c.applicant_name, c.responsible,
                                 c.applicant_address, c.feedback)) AS g (gram)
        GROUP BY c.unit_id, g.gram
        HAVING SUM(c.d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_gram_counts_insert AFTER INSERT ON ledger_petitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_gram_counts_change();
CREATE TRIGGER ledger_gram_counts_delete AFTER DELETE ON ledger_petitions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_gram_counts_change();
CREATE TRIGGER ledger_gram_counts_update AFTER UPDATE ON ledger_petitions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_gram_counts_change();
