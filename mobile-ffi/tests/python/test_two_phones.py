"""Two phones of one cadre, and a reinstalled third, through the generated
Python bindings against a real `server serve --demo` started here.

Run by ../run-python.sh, which builds the server and the bindings and sets
SERVER_BIN and BINDINGS_DIR. Standard library only.
"""

import asyncio
import os
import random
import signal
import socket
import sqlite3
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.environ.get("BINDINGS_DIR", ""))
import mobile_ffi as m  # noqa: E402

DEMO_PASSWORD = "demo-pass"
CADRE = "cadre01"
SYNC_DEADLINE_MS = 30_000
START_TIMEOUT_S = 60

# 2026-05-28 10:00 Beijing: a fixed day, so visits land in the 2026 diary.
VISIT_AT_MS = 1_779_933_600_000


class Server:
    """`server serve --demo --port 0` in a fresh data directory."""

    def __init__(self):
        self.data_dir = tempfile.mkdtemp(prefix="ffi-e2e-server-")
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "JWT_SECRET") and not k.startswith("VISIT_DIARY_")}
        env["RUST_LOG"] = "warn"
        self.log = open(os.path.join(self.data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [os.environ["SERVER_BIN"], "serve", "--demo", "--port", "0", "--data-dir", self.data_dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, env=env)
        found = threading.Event()
        self.url = None

        def read_banner():
            # Keeps draining stdout so the server never blocks on a full pipe.
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace")
                if self.url is None and "listening on http://" in line:
                    addr = line.split("listening on http://", 1)[1].split()[0].rstrip("/")
                    self.url = "http://" + addr
                    found.set()

        threading.Thread(target=read_banner, daemon=True).start()
        if not found.wait(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("the server printed no 'listening on' banner")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Phone:
    """One installation of the app: its own data directory and device id."""

    def __init__(self, server_url, name, key=None):
        self.dir = tempfile.mkdtemp(prefix=f"ffi-e2e-{name}-")
        self.server_url = server_url
        self.device_id = f"{name}-{uuid.uuid4().hex[:8]}"
        self.client = self.open(key)

    def open(self, key=None):
        return m.DiaryClient.open(m.ClientConfig(
            data_dir=self.dir, server_url=self.server_url, device_id=self.device_id,
            at_rest_key=key))

    def store_bytes(self):
        """Every byte the store has on disk (the file and its journal)."""
        data = b""
        for name in os.listdir(self.dir):
            with open(os.path.join(self.dir, name), "rb") as f:
                data += f.read()
        return data

    def login(self):
        return asyncio.run(self.client.login(CADRE, DEMO_PASSWORD))

    def sync(self):
        report = asyncio.run(self.client.sync_now(SYNC_DEADLINE_MS))
        if report.error is not None:
            raise AssertionError(f"sync failed: {report.error} {report.error_message}")
        return report

    def visits(self, **query):
        return self.client.list_visits(m.VisitQuery(**query))

    def visit_ids(self):
        return {v.id for v in self.visits(limit=10_000)}

    def close(self):
        self.client = None
        shutil.rmtree(self.dir, ignore_errors=True)


def home_visit(place, name, notes="", at_ms=VISIT_AT_MS):
    return m.NewVisit(
        kind=m.VisitKind.HOME_VISIT, at_ms=at_ms, place=place,
        subject_kind=m.SubjectKind.HOUSEHOLD, subject_name=name, subject_address=None,
        tags=["needy"], participants=["张建国"],
        answers=m.SixAnswers(
            basic_situation="家中四口人，儿子在县城务工，孙子在村小上学，老人参加了新农合。",
            difficulties="老伴腿脚不便，看病要去镇卫生院，路远。",
            income_wishes="想扩大养鸡规模，缺少启动资金。",
            opinion_of_cadres="村干部上门勤，办事实在。",
            work_suggestions="希望村里的路灯早点修好。",
            development_ideas="发展林下养殖，搞合作社。"),
        notes=notes, latitude=None, longitude=None, aid_money_fen=0, aid_goods="",
        resolved_on_spot=["医保报销流程已当场讲解"])


class TwoPhonesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.phones = []

    def tearDown(self):
        for p in self.phones:
            p.close()

    def phone(self, name, key=None):
        p = Phone(self.server.url, name, key)
        self.phones.append(p)
        return p

    def test_visits_recorded_offline_on_two_phones_reach_both(self):
        a, b = self.phone("phone-a"), self.phone("phone-b")
        a.login()
        b.login()
        # Offline: nothing syncs until both have recorded.
        va = a.client.add_visit(home_visit("柳树村三组", "王秀英", "初次走访。"))
        vb = b.client.add_visit(home_visit("柳树村五组", "李德福", "入户了解低保情况。"))
        self.assertEqual(a.client.sync_status().pending_changes, 1)
        # Both phones created the 2026 diary (the visits' year) offline: one document.
        self.assertEqual(set(a.client.document_ids()), set(b.client.document_ids()))

        ra = a.sync()
        self.assertGreaterEqual(ra.changes_up, 1)
        b.sync()
        a.sync()
        for phone in (a, b):
            ids = phone.visit_ids()
            self.assertIn(va.id, ids)
            self.assertIn(vb.id, ids)
            self.assertEqual(phone.client.sync_status().pending_changes, 0)
        # Search in Chinese, on the other phone's record.
        found = a.visits(text="李德福", limit=50)
        self.assertIn(vb.id, [v.id for v in found])
        got = b.client.visit(va.id)
        self.assertEqual(got.place, "柳树村三组")
        self.assertEqual(got.answers.difficulties, "老伴腿脚不便，看病要去镇卫生院，路远。")

    def test_both_phones_edit_the_same_notes_and_both_edits_stay(self):
        a, b = self.phone("notes-a"), self.phone("notes-b")
        a.login()
        b.login()
        v = a.client.add_visit(home_visit("柳树村二组", "赵桂兰", "初次走访。"))
        a.sync()
        b.sync()
        self.assertEqual(b.client.visit(v.id).notes, "初次走访。")
        # Both offline, both add to the notes.
        a.client.edit_visit(v.id, m.VisitEdit(notes="初次走访。手机甲：已联系镇卫生院。"))
        b.client.edit_visit(v.id, m.VisitEdit(notes="平板乙：孙子学费已落实。初次走访。"))
        a.sync()
        report = b.sync()
        self.assertGreaterEqual(report.changes_down, 1)
        a.sync()
        for phone in (a, b):
            notes = phone.client.visit(v.id).notes
            self.assertIn("手机甲：已联系镇卫生院。", notes)
            self.assertIn("平板乙：孙子学费已落实。", notes)
            self.assertIn("初次走访。", notes)
        self.assertEqual(a.client.visit(v.id).notes, b.client.visit(v.id).notes)

    def test_a_reinstalled_phone_recovers_everything_after_login(self):
        a, b = self.phone("old-a"), self.phone("old-b")
        a.login()
        b.login()
        va = a.client.add_visit(home_visit("柳树村一组", "孙玉梅"))
        vb = b.client.add_visit(home_visit("柳树村四组", "周长林"))
        p = a.client.raise_petition(m.NewPetition(
            visit_id=va.id, applicant_name="孙玉梅", applicant_phone="13812345678",
            applicant_address=None, matter="村东头路灯坏了三个月，晚上出行不便。",
            category=m.Category.PRACTICAL_DIFFICULTY, level=m.Level.VILLAGE, deadline=None))
        a.client.note_progress(p.id, "已报村委会，电工周五上门。")
        card = b.client.add_service_card(m.NewServiceCard(
            resident="周长林", phone="13912345678", address="柳树村四组12号", household=None,
            handed_over_at_ms=VISIT_AT_MS, pairing_role=m.PairingRole.RESIDENT,
            pairing_needy=True, notes="独居老人"))
        a.sync()
        b.sync()
        a.sync()

        c = self.phone("reinstalled")
        c.login()
        self.assertEqual(c.visit_ids(), set())
        report = c.sync()
        self.assertGreaterEqual(report.documents_synced, 2)
        self.assertGreater(report.changes_down, 0)
        self.assertEqual(c.visit_ids(), a.visit_ids())
        self.assertTrue({va.id, vb.id} <= c.visit_ids())
        got = c.client.petition(p.id)
        self.assertEqual(got.status, m.PetitionStatus.IN_PROGRESS)
        history = c.client.petition_history(p.id)
        self.assertEqual([e.kind for e in history], ["created", "progress_noted"])
        self.assertIn(card.id, [x.id for x in c.client.list_service_cards(None)])

        # Edits and deletes made on the reinstalled phone reach the others.
        c.client.edit_petition(p.id, m.PetitionEdit(matter="村东头路灯坏了三个月，已有老人夜里摔倒。"))
        c.client.edit_service_card(card.id, m.ServiceCardEdit(phone="", notes="独居老人，子女在外地"))
        c.client.delete_petition(p.id)
        c.sync()
        a.sync()
        self.assertNotIn(p.id, [x.id for x in a.client.list_petitions(m.PetitionQuery())])
        self.assertIsNotNone(a.client.petition(p.id).deleted_at_ms)
        self.assertEqual(a.client.petition(p.id).matter, "村东头路灯坏了三个月，已有老人夜里摔倒。")
        [edited] = [x for x in a.client.list_service_cards("周长林") if x.id == card.id]
        self.assertIsNone(edited.phone)
        self.assertEqual(edited.notes, "独居老人，子女在外地")
        a.client.delete_service_card(card.id)
        self.assertNotIn(card.id, [x.id for x in a.client.list_service_cards(None)])
        self.assertEqual(c.client.me().username, CADRE)

    def test_concurrent_places_show_as_a_conflict_and_nothing_is_dropped(self):
        a, b = self.phone("conflict-a"), self.phone("conflict-b")
        a.login()
        b.login()
        v = a.client.add_visit(home_visit("柳树村十组", "冯建华"))
        a.sync()
        b.sync()
        a.client.edit_visit(v.id, m.VisitEdit(place="柳树村十组东头"))
        b.client.edit_visit(v.id, m.VisitEdit(place="柳树村十组西头"))
        a.sync()
        b.sync()
        a.sync()
        for phone in (a, b):
            mine = [c for c in phone.client.conflicts() if v.id in c.path]
            self.assertEqual(len(mine), 1, mine)
            self.assertEqual(mine[0].path[-1], "place")
            self.assertEqual(sorted(mine[0].values), ["柳树村十组东头", "柳树村十组西头"])
            self.assertEqual(phone.client.visit(v.id).place, mine[0].values[0])
        # Settled on one phone, the choice reaches the other.
        [conflict] = [c for c in a.client.conflicts() if v.id in c.path]
        west = conflict.values.index("柳树村十组西头")
        a.client.settle_conflict(conflict.document_id, conflict.path, west)
        self.assertEqual(a.client.visit(v.id).place, "柳树村十组西头")
        a.sync()
        b.sync()
        for phone in (a, b):
            self.assertEqual([c for c in phone.client.conflicts() if v.id in c.path], [])
            self.assertEqual(phone.client.visit(v.id).place, "柳树村十组西头")

    def test_a_store_with_an_at_rest_key_keeps_nothing_readable_on_disk(self):
        key = os.urandom(32).hex()
        phone = self.phone("keyed", key=key)
        phone.login()
        phone.client.add_visit(home_visit("柳树村三组", "欧阳春花", "独居老人，需要定期探望。"))
        phone.client.raise_petition(m.NewPetition(
            visit_id=None, applicant_name="欧阳春花", applicant_phone="13812345678",
            applicant_address=None, matter="屋顶漏雨，需要修缮。",
            category=m.Category.PRACTICAL_DIFFICULTY, level=m.Level.VILLAGE, deadline=None))
        phone.sync()
        on_disk = phone.store_bytes()
        for secret in ["欧阳春花", "13812345678", "屋顶漏雨", CADRE]:
            self.assertNotIn(secret.encode("utf-8"), on_disk, secret)
        self.assertNotIn(b"SQLite format 3", on_disk)

        # Closed and reopened (the app restarted): only the key opens it.
        phone.client = None
        with self.assertRaises(m.ClientError.WrongKey):
            phone.open(os.urandom(32).hex())
        with self.assertRaises(m.ClientError.CorruptStore):
            phone.open(None)
        phone.client = phone.open(key)
        self.assertEqual([v.subject_name for v in phone.visits(text="欧阳")], ["欧阳春花"])
        self.assertEqual(phone.client.me().username, CADRE)

    def test_progress_counts_visits_and_distinct_households_against_the_quota(self):
        a = self.phone("progress")
        a.login()
        now_ms = int(time.time() * 1000)
        a.client.add_visit(home_visit("柳树村一组", "王秀英", at_ms=now_ms))
        a.client.add_visit(home_visit("柳树村一组", "王秀英", "回访。", at_ms=now_ms))
        gone = a.client.add_visit(home_visit("柳树村二组", "陈志强", at_ms=now_ms))
        a.client.add_visit(home_visit("柳树村三组", "林小红", at_ms=now_ms))
        a.client.delete_visit(gone.id)
        p = a.client.progress()
        self.assertEqual((p.visits, p.households, p.household_quota), (3, 2, 120))
        self.assertEqual(len(a.visits(include_deleted=True, limit=100)), 4)
        self.assertEqual(a.client.visit(gone.id).deleted_by, CADRE)

    def test_invalid_input_is_a_typed_error_naming_the_field(self):
        a = self.phone("invalid")
        a.login()
        with self.assertRaises(m.ClientError.Invalid) as caught:
            a.client.add_visit(home_visit("", "王秀英"))
        self.assertEqual(caught.exception.field, "place")
        with self.assertRaises(m.ClientError.Invalid) as caught:
            a.client.raise_petition(m.NewPetition(
                visit_id=None, applicant_name="王秀英", applicant_phone="12345",
                applicant_address=None, matter="路灯坏了", category=m.Category.PRACTICAL_DIFFICULTY,
                level=m.Level.VILLAGE, deadline=None))
        self.assertEqual(caught.exception.field, "phone")
        self.assertEqual(a.client.sync_status().pending_changes, 0)

    def test_observer_is_told_which_documents_a_sync_changed(self):
        a, b = self.phone("observed-a"), self.phone("observed-b")
        a.login()
        b.login()
        b.sync()

        class Observer(m.SyncObserver):
            def __init__(self):
                self.calls = []

            def documents_changed(self, document_ids):
                self.calls.append(list(document_ids))

        observer = Observer()
        b.client.set_observer(observer)
        a.client.add_visit(home_visit("柳树村六组", "钱大海"))
        [diary] = a.client.document_ids()  # the 2026 diary (the visit's year), made offline
        a.sync()
        report = b.sync()
        self.assertEqual(len(observer.calls), 1)
        self.assertEqual(observer.calls[0], report.changed_documents)
        self.assertIn(diary, observer.calls[0])
        # A sync that brings nothing tells the observer nothing.
        b.sync()
        self.assertEqual(len(observer.calls), 1)

    def test_an_expired_or_refused_access_token_is_refreshed_without_a_login(self):
        a = self.phone("expired")
        a.login()
        v = a.client.add_visit(home_visit("柳树村七组", "吴春花"))
        store = os.path.join(a.dir, "diary.sqlite3")
        # The phone was offline past its access token's expiry.
        with sqlite3.connect(store) as db:
            db.execute("UPDATE settings SET value = '0' WHERE key = 'access_expires_ms'")
        a.sync()
        self.assertEqual(a.client.sync_status().pending_changes, 0)
        # The server refuses a token the phone still believes in (revoked key,
        # clock skew): the phone refreshes once and carries on.
        a.client.edit_visit(v.id, m.VisitEdit(notes="二次回访。"))
        with sqlite3.connect(store) as db:
            db.execute("UPDATE settings SET value = 'not.a.token' WHERE key = 'access_token'")
            db.execute("UPDATE settings SET value = '99999999999999' WHERE key = 'access_expires_ms'")
        a.sync()
        self.assertEqual(a.client.sync_status().pending_changes, 0)
        self.assertEqual(a.client.me().username, CADRE)

    def test_a_deadline_that_passes_loses_nothing(self):
        a = self.phone("deadline")
        a.login()
        v = a.client.add_visit(home_visit("柳树村八组", "郑小军"))
        report = asyncio.run(a.client.sync_now(1))
        self.assertEqual(report.error, m.SyncErrorKind.DEADLINE)
        self.assertEqual(a.client.sync_status().last_error, m.SyncErrorKind.DEADLINE)
        self.assertEqual(a.client.sync_status().pending_changes, 1)
        a.sync()
        self.assertEqual(a.client.sync_status().pending_changes, 0)
        self.assertIsNone(a.client.sync_status().last_error)
        self.assertIn(v.id, a.visit_ids())

    def test_a_cancelled_sync_leaves_the_store_consistent(self):
        a = self.phone("cancelled")
        a.login()
        ids = {a.client.add_visit(home_visit("柳树村九组", f"住户{n:02d}")).id for n in range(30)}

        async def cancel_soon():
            try:
                await asyncio.wait_for(a.client.sync_now(60_000), timeout=0.005)
            except asyncio.TimeoutError:
                return True
            return False

        self.assertTrue(asyncio.run(cancel_soon()), "the sync finished before it could be cancelled")
        status = a.client.sync_status()
        self.assertFalse(status.syncing, "a cancelled sync is not left running")
        self.assertTrue(ids <= a.visit_ids())
        a.sync()
        self.assertEqual(a.client.sync_status().pending_changes, 0)

    def test_a_sync_killed_at_random_points_leaves_a_store_that_opens_and_syncs(self):
        a = self.phone("killed")
        a.login()
        ids = {a.client.add_visit(home_visit(f"柳树村{n % 9 + 1}组", f"住户{n:03d}", "走访记录。" * 20)).id
               for n in range(120)}
        a_dir, device = a.dir, "killed-again"
        a.client = None
        child = (
            "import asyncio, sys; sys.path.insert(0, sys.argv[1]); import mobile_ffi as m; "
            "c = m.DiaryClient.open(m.ClientConfig(data_dir=sys.argv[2], server_url=sys.argv[3], "
            "device_id=sys.argv[4])); asyncio.run(c.sync_now(60000))"
        )
        rng = random.Random(7)
        killed = 0
        for _ in range(8):
            proc = subprocess.Popen(
                [sys.executable, "-c", child, os.environ["BINDINGS_DIR"], a_dir, self.server.url, device],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait()
        self.assertGreater(killed, 0, "no sync was killed; make the data bigger")

        reopened = m.DiaryClient.open(m.ClientConfig(data_dir=a_dir, server_url=self.server.url,
                                                      device_id=device))
        self.assertTrue(ids <= {v.id for v in reopened.list_visits(m.VisitQuery(limit=10_000))})
        report = asyncio.run(reopened.sync_now(SYNC_DEADLINE_MS))
        self.assertIsNone(report.error, report.error_message)
        self.assertEqual(reopened.sync_status().pending_changes, 0)

        c = self.phone("after-kills")
        c.login()
        c.sync()
        self.assertTrue(ids <= c.visit_ids())


class TlsProxy:
    """A TLS front for the server, as an operator's reverse proxy would be:
    a test CA signs a certificate for localhost and 127.0.0.1, and every
    connection is decrypted here and piped to the server's plain port."""

    def __init__(self, server_url):
        self.dir = tempfile.mkdtemp(prefix="ffi-e2e-tls-")
        self.ca = os.path.join(self.dir, "ca.pem")
        key, cert = os.path.join(self.dir, "leaf.key"), os.path.join(self.dir, "leaf.pem")
        self._make_certificates(key, cert)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        host, port = server_url.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context = context
        threading.Thread(target=self._accept, daemon=True).start()

    def _make_certificates(self, key, cert):
        def run(*args, **kw):
            subprocess.run(["openssl", *args], check=True, capture_output=True, **kw)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        ca_key = os.path.join(self.dir, "ca.key")
        # Two CAs: ours signs the server's certificate, the other does not.
        self.other_ca = os.path.join(self.dir, "other-ca.pem")
        for pem, key_out in [(self.ca, ca_key), (self.other_ca, self.other_ca + ".key")]:
            run("req", "-x509", *ec, "-keyout", key_out, "-out", pem, "-days", "2",
                "-subj", "/CN=Visit Diary Test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign")
        csr = os.path.join(self.dir, "leaf.csr")
        run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
        ext = os.path.join(self.dir, "leaf.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key,
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)

    def _accept(self):
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the phone refused our certificate
            return
        upstream = socket.create_connection(self.upstream)

        def pipe(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def url(self, host="localhost"):
        return f"https://{host}:{self.port}"

    def stop(self):
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsTest(unittest.TestCase):
    """https:// and wss:// through rustls and the platform's trust store."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.proxy = TlsProxy(cls.server.url)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.server.stop()

    def setUp(self):
        self.saved = os.environ.get("SSL_CERT_FILE")

    def tearDown(self):
        if self.saved is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = self.saved

    def test_a_phone_logs_in_and_syncs_over_tls_with_a_trusted_ca(self):
        # The trust store a Linux platform verifier reads; on a phone, the
        # unit's CA installed in the system store.
        os.environ["SSL_CERT_FILE"] = self.proxy.ca
        for host in ["localhost", "127.0.0.1"]:
            phone = Phone(self.proxy.url(host), "tls")
            try:
                self.assertEqual(phone.login().username, CADRE)
                visit = phone.client.add_visit(home_visit("河湾村", "李桂兰", "经加密连接同步。"))
                report = phone.sync()
                self.assertGreater(report.documents_synced, 0)
                self.assertEqual(report.changes_pending, 0)
                self.assertIn(visit.id, phone.visit_ids())
            finally:
                phone.close()

    def test_a_server_whose_certificate_is_not_trusted_is_refused(self):
        os.environ["SSL_CERT_FILE"] = self.proxy.other_ca
        phone = Phone(self.proxy.url(), "untrusted")
        try:
            with self.assertRaises(m.ClientError.Offline) as refused:
                phone.login()
            self.assertIn("certificate", str(refused.exception).lower())
        finally:
            phone.close()


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    started = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"{passed} passed, {failed} failed ({time.monotonic() - started:.1f} s)")
    sys.exit(0 if failed == 0 and result.testsRun > 0 else 1)


if __name__ == "__main__":
    main()
