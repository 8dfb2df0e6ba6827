"""Prints `nudge replay` decisions (JSON lines on stdin) one per line:
time, rule, action, user, what, and what became of it with its reason."""

import json
import sys

for line in sys.stdin:
    d = json.loads(line)
    args = d["args"]
    who = args.get("user") or args.get("id", "")
    what = args.get("template") or args.get("to") or args.get("experiment") or ""
    if "status" in d:
        outcome = d["status"]
        if "reason" in d:
            outcome += ": " + d["reason"]
        if "until" in d:
            outcome += " until " + d["until"]
    else:
        outcome = "done" + (" -> " + d["branch"] if "branch" in d else "")
    extra = ", ".join(f"{k}={v}" for k, v in d.get("details", {}).items())
    print(
        f'{d["time"][:16]}  {d["rule"][:30]:<30} {d["action"]:<13} {who:<9} '
        f"{what:<16} {outcome}" + (f"  [{extra}]" if extra else "")
    )
