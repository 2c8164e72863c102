"""A cadre's side in a terminal, over the generated Python bindings.

    mobile-ffi/scripts/build-bindings.sh
    target/debug/server serve --demo --port 8080 --data-dir /tmp/demo &
    python3 mobile-ffi/examples/cadre.py --server http://127.0.0.1:8080 --data /tmp/phone login cadre01
    python3 mobile-ffi/examples/cadre.py --data /tmp/phone visit 柳树村三组 王秀英 --difficulties 看病远
    python3 mobile-ffi/examples/cadre.py --data /tmp/phone petition 王秀英 "村东头路灯坏了" --visit <id>
    python3 mobile-ffi/examples/cadre.py --data /tmp/phone list
    python3 mobile-ffi/examples/cadre.py --server http://127.0.0.1:8080 --data /tmp/phone sync

Everything but `login` and `sync` works offline. `login` reads the password
from DIARY_PASSWORD when set (the demo's is `demo-pass`).
"""

import argparse
import asyncio
import getpass
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("BINDINGS_DIR", os.path.join(HERE, "..", "bindings", "python")))
import mobile_ffi as m  # noqa: E402


def client(args):
    return m.DiaryClient.open(m.ClientConfig(
        data_dir=args.data, server_url=args.server, device_id=f"terminal-{os.uname().nodename}"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="http://127.0.0.1:8080")
    p.add_argument("--data", default=os.path.expanduser("~/.visit-diary-phone"))
    sub = p.add_subparsers(dest="command", required=True)
    login = sub.add_parser("login")
    login.add_argument("username")
    visit = sub.add_parser("visit", help="record a home visit with the six answers")
    visit.add_argument("place")
    visit.add_argument("household")
    for field in ("basic_situation", "difficulties", "income_wishes", "opinion_of_cadres",
                  "work_suggestions", "development_ideas", "notes"):
        visit.add_argument("--" + field.replace("_", "-"), default="")
    petition = sub.add_parser("petition", help="raise a petition")
    petition.add_argument("applicant")
    petition.add_argument("matter")
    petition.add_argument("--visit")
    petition.add_argument("--category", default="PRACTICAL_DIFFICULTY",
                          choices=[c.name for c in m.Category])
    petition.add_argument("--deadline", help="YYYY-MM-DD")
    listing = sub.add_parser("list")
    listing.add_argument("--text")
    sub.add_parser("sync")
    sub.add_parser("status")
    args = p.parse_args()

    c = client(args)
    try:
        if args.command == "login":
            password = os.environ.get("DIARY_PASSWORD") or getpass.getpass("password: ")
            me = asyncio.run(c.login(args.username, password))
            print(f"logged in: {me.display_name} ({me.unit_name})")
        elif args.command == "visit":
            v = c.add_visit(m.NewVisit(
                kind=m.VisitKind.HOME_VISIT, at_ms=int(time.time() * 1000), place=args.place,
                subject_kind=m.SubjectKind.HOUSEHOLD, subject_name=args.household,
                subject_address=None, tags=[], participants=[],
                answers=m.SixAnswers(
                    basic_situation=args.basic_situation, difficulties=args.difficulties,
                    income_wishes=args.income_wishes, opinion_of_cadres=args.opinion_of_cadres,
                    work_suggestions=args.work_suggestions, development_ideas=args.development_ideas),
                notes=args.notes, latitude=None, longitude=None, aid_money_fen=0, aid_goods="",
                resolved_on_spot=[]))
            print(f"visit {v.id} recorded")
        elif args.command == "petition":
            pt = c.raise_petition(m.NewPetition(
                visit_id=args.visit, applicant_name=args.applicant, applicant_phone=None,
                applicant_address=None, matter=args.matter, category=m.Category[args.category],
                level=m.Level.VILLAGE, deadline=args.deadline))
            print(f"petition {pt.id} recorded ({pt.status.name})")
        elif args.command == "list":
            for v in c.list_visits(m.VisitQuery(text=args.text)):
                day = time.strftime("%Y-%m-%d", time.localtime(v.at_ms / 1000))
                print(f"{day}  {v.place}  {v.subject_name}  {v.id}")
            for pt in c.list_petitions(m.PetitionQuery(text=args.text)):
                print(f"诉求  {pt.applicant_name}: {pt.matter}  [{pt.status.name}]  {pt.id}")
            pr = c.progress()
            print(f"{pr.year}: {pr.visits} visits, {pr.households}/{pr.household_quota} households")
        elif args.command == "sync":
            r = asyncio.run(c.sync_now(30_000))
            print(f"synced {r.documents_synced} documents: {r.changes_up} up, {r.changes_down} down, "
                  f"{r.bytes_up} B up, {r.bytes_down} B down, pending {r.changes_pending}"
                  + (f"; error {r.error.name}: {r.error_message}" if r.error else ""))
            return 1 if r.error else 0
        elif args.command == "status":
            print(c.sync_status())
    except m.ClientError as e:
        print(f"error: {e!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
