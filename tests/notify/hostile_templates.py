"""The hostile-templates corpus (issue 12): each must render or fail with a TemplateError
within the time budget and under 64 MB, and never print an internal repr.

Used by tests/notify/test_template_budgets.py and bench/bench_hostile.py.
"""

from __future__ import annotations

BIG = "'x'*15000"

HOSTILE_TEMPLATES: list[str] = [
    # loops over strings, lists, dicts (not counted before issue 12)
    "{% set x = " + BIG + " %}{% for a in x %}{% for b in x %}{% for c in x %}.{% endfor %}{% endfor %}{% endfor %}",
    "{% set x = " + BIG + " %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}",
    "{% set l = [1]*15000 %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",
    "{% set d = dict(a=1) %}{% for i in range(15000) %}{% for k in d %}{% for j in range(15000) %}{% endfor %}{% endfor %}{% endfor %}",
    "{% for a in " + BIG + " if a %}{% for b in " + BIG + " if b %}{% endfor %}{% endfor %}",
    "{% for a in (" + BIG + ")|list %}{% for b in (" + BIG + ")|list %}{% endfor %}{% endfor %}",
    "{% for a in " + BIG + " %}{{ loop.index }}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for x in [[1,2],[3]] recursive %}{{ loop(x) if x is iterable else x }}{% endfor %}",
    # sizes computed after the work before issue 12
    "{{ 'a'.center(2000000000) }}",
    "{{ 'a'.ljust(2000000000) }}",
    "{{ 'a'.rjust(2000000000) }}",
    "{{ 'a'.zfill(2000000000) }}",
    "{{ ('\t'*15000).expandtabs(100000) }}",
    "{{ (" + BIG + ").replace('x', 'y'*15000) }}",
    "{{ (" + BIG + ")|replace('x', 'y'*15000) }}",
    "{{ ','.join([" + BIG + "]*15000) }}",
    "{{ ([" + BIG + "]*15000)|join }}",
    "{{ ([[" + BIG + "]*15000]*15000)|join }}",
    "{{ '%200000000d'|format(1) }}",
    "{{ '%200000000d' % 1 }}",
    "{{ '%.200000000f' % 1.5 }}",
    "{{ '%*d' % (200000000, 1) }}",
    "{{ '%s%s%s' % (" + BIG + ", " + BIG + ", " + BIG + ") }}",
    "{{ 'a%s' % ([[" + BIG + "]*15000],) }}",
    "{{ [[" + BIG + "]*15000] }}",
    "{{ [" + BIG + "]*15000 }}",
    "{{ {'a': [" + BIG + "]*15000} }}",
    "{{ ([" + BIG + "]*15000)|string|length }}",
    "{{ ([" + BIG + "]*15000)|tojson|length }}",
    "{{ ([" + BIG + "]*15000)|sum(start=[])|length }}",
    "{{ ('a\n'*7000)|indent(15000) }}",
    "{{ ('a\n'*7000)|indent('x'*15000) }}",
    "{{ x ~ [" + BIG + "]*1000 }}",
    "{{ 'x' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 2 ** 100000000 }}",
    "{{ 'x'|center(999999999) }}",
    "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}",
    "{% for i in range(100000) %}{{ i }}{% endfor %}",
    "{{ range(999999999)|list|length }}",
    "{{ (" + BIG + ")|wordwrap(1)|length }}",
    "{{ (" + BIG + ")|list|sort|join|length }}",
    "{{ ('9'*15000)|int }}",
    "{{ (range(15000)|list)|batch(15000, 'x'*15000)|list|length }}",
    # recursion and nesting
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% macro m(n) %}{% for i in range(10) %}{{ m(n) }}{% endfor %}{% endmacro %}{{ m(1) }}",
    # internal reprs with addresses
    "{{ range }}",
    "{{ namespace }}",
    "{{ namespace() }}",
    "{{ cycler }}",
    "{{ joiner() }}",
    "{{ dict }}",
    "{% for i in [1] %}{{ loop }}{% endfor %}",
    "{% macro m() %}{% endmacro %}{{ m }}",
    "{{ [range] }}",
    "{{ {'f': range} }}",
    "{{ ''.upper }}",
    "{{ x.upper }}",
    # sandbox escapes (already blocked; kept so they stay blocked)
    "{{ x.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ ''.format }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ lipsum(100000) }}",
    "{{ self._TemplateReference__context }}",
]
