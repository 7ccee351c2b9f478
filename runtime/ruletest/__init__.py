"""`cep test`: rule tests in YAML files (LANGUAGE.md §9.6). See docs/rule-tests.md."""

from __future__ import annotations

from runtime.ruletest.reports import FORMATS, exit_code
from runtime.ruletest.runner import FileOutcome, TestOutcome, messages_for, run_file
from runtime.ruletest.spec import RulesDoNotCheck, load_test_file
from runtime.ruletest.yamlnodes import MalformedTestFile

__all__ = [
    "FORMATS",
    "FileOutcome",
    "MalformedTestFile",
    "RulesDoNotCheck",
    "TestOutcome",
    "exit_code",
    "load_test_file",
    "messages_for",
    "run_file",
]
