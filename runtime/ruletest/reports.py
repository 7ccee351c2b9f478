"""Test results as text for people, JSON for scripts, JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from runtime.ruletest.runner import FileOutcome


def exit_code(files: Sequence[FileOutcome]) -> int:
    """0 every test passed, 1 a test failed, 2 a test file could not be run (LANGUAGE.md §9.6)."""
    if any(f.error is not None for f in files):
        return 2
    return 0 if all(f.passed for f in files) else 1


def as_text(files: Sequence[FileOutcome]) -> str:
    lines: list[str] = []
    passed = failed = 0
    for f in files:
        for t in f.tests:
            if t.passed:
                passed += 1
                lines.append(f"ok    {f.path}:{t.line}  {t.name}")
            else:
                failed += 1
                lines.append(f"FAIL  {f.path}:{t.line}  {t.name}")
                lines += [f"      {x}" for x in "\n".join(t.failures).split("\n")]
        if f.error is not None:
            # The whole diagnostic (source line, caret, hints) goes to stderr; here its first line.
            lines.append(f"ERROR {f.error.split(chr(10))[0]}")
    errors = sum(1 for f in files if f.error is not None)
    summary = f"{passed} passed, {failed} failed"
    if errors:
        summary += f", {errors} test file{'s' if errors != 1 else ''} malformed"
    lines.append(summary)
    return "\n".join(lines)


def as_json(files: Sequence[FileOutcome]) -> str:
    doc = {
        "passed": sum(1 for f in files for t in f.tests if t.passed),
        "failed": sum(1 for f in files for t in f.tests if not t.passed),
        "errors": sum(1 for f in files if f.error is not None),
        "exit_code": exit_code(files),
        "files": [
            {
                "path": f.path,
                "error": f.error,
                "warnings": f.warnings,
                "tests": [
                    {"name": t.name, "line": t.line, "passed": t.passed, "failures": t.failures, "seconds": round(t.seconds, 6)}
                    for t in f.tests
                ],
            }
            for f in files
        ],
    }
    return json.dumps(doc, indent=2)


def as_junit(files: Sequence[FileOutcome]) -> str:
    """One <testsuite> per test file; a malformed file is a suite with one <error>."""
    root = ET.Element("testsuites", name="cep test")
    total = fails = errs = 0
    for f in files:
        suite = ET.SubElement(root, "testsuite", name=f.path)
        n_fail = sum(1 for t in f.tests if not t.passed)
        for t in f.tests:
            case = ET.SubElement(
                suite, "testcase", name=t.name, classname=f.path, file=f.path, line=str(t.line), time=f"{t.seconds:.6f}"
            )
            if not t.passed:
                fail = ET.SubElement(case, "failure", message=t.failures[0] if t.failures else "failed")
                fail.text = "\n".join(t.failures)
        n_err = 0
        if f.error is not None:
            n_err = 1
            case = ET.SubElement(suite, "testcase", name="(test file)", classname=f.path, file=f.path)
            err = ET.SubElement(case, "error", message=f.error.split("\n")[0])
            err.text = f.error
        if f.warnings:
            ET.SubElement(suite, "system-err").text = "\n".join(f.warnings)
        n_tests = len(f.tests) + n_err
        suite.set("tests", str(n_tests))
        suite.set("failures", str(n_fail))
        suite.set("errors", str(n_err))
        suite.set("time", f"{sum(t.seconds for t in f.tests):.6f}")
        total, fails, errs = total + n_tests, fails + n_fail, errs + n_err
    root.set("tests", str(total))
    root.set("failures", str(fails))
    root.set("errors", str(errs))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


FORMATS = {"text": as_text, "json": as_json, "junit": as_junit}
