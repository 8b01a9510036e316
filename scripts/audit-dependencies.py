"""`make audit`: look up every locked package in a vulnerability database.

pip-audit asks PyPI's JSON API for each pinned version. Where that database
cannot be reached (an offline machine, a registry mirror without the JSON
API), pip-audit reports each package as skipped and still exits 0, which reads
like a clean bill of health. This wrapper says plainly what was and was not
checked, and exits non-zero unless every package was looked up and none has a
known vulnerability.
"""

import json
import subprocess
import sys

NOT_CHECKED, VULNERABLE = 3, 1


def main(requirement_files):
    checked, skipped, vulnerable = [], [], []
    for path in requirement_files:
        report = _audit(path)
        if report is None:
            return NOT_CHECKED
        for dep in report["dependencies"]:
            if "skip_reason" in dep:
                skipped.append(f"{dep['name']}: {dep['skip_reason']}")
            elif dep.get("vulns"):
                vulnerable += [f"{dep['name']} {dep['version']}: {v['id']} "
                               f"(fixed in {', '.join(v['fix_versions']) or 'no release yet'})"
                               for v in dep["vulns"]]
            else:
                checked.append(dep["name"])
    _print_summary(checked, skipped, vulnerable)
    if vulnerable:
        return VULNERABLE
    return NOT_CHECKED if skipped else 0


def _audit(path):
    """pip-audit's JSON report on one lock file, or None (said why) if it gave none."""
    result = subprocess.run(
        [sys.executable, "-m", "pip_audit", "-r", path, "--require-hashes", "--no-deps",
         "--disable-pip", "--progress-spinner", "off", "--format", "json"],
        capture_output=True, text=True)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit failed on {path}:\n{result.stderr.strip()}")
        return None


def _print_summary(checked, skipped, vulnerable):
    for line in vulnerable:
        print("VULNERABLE", line)
    if skipped:
        print(f"NOT CHECKED: {len(skipped)} package(s) could not be looked up; the vulnerability "
              "database (PyPI's JSON API) was not reachable from here or does not know them:")
        for line in skipped[:10]:
            print("  ", line)
        if len(skipped) > 10:
            print(f"   ... and {len(skipped) - 10} more")
    print(f"{len(checked)} package(s) checked, {len(vulnerable)} known vulnerabilit(ies), "
          f"{len(skipped)} not checked.")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["requirements.lock"]))
