"""The grammar of the cep rule language (`cep.lark`), installed as the package `cepdsl.grammar`.

It lives at the top of the repository, where editors' tooling (editors/textmate) and
readers look for it; pyproject.toml maps this folder to `cepdsl.grammar` with setuptools'
package-dir, so `cepdsl.parser` loads it with `Lark.open_from_package` from a wheel,
an editable install or a source checkout alike.
"""
