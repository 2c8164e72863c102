//! Reading a running server's `/metrics`.

/// The value of the metric series whose line starts with `series` (a name,
/// or a name and the start of its labels: `name{reason="idle"`), 0 when it
/// is not there yet, from the server at `base_url`. Read from this machine,
/// which `/metrics` answers without a token.
pub async fn metric(base_url: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}
