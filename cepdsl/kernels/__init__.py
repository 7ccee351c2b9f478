"""Building blocks both backends (and the sources) run on, so neither backend imports
the other: exact key coding (`key_codes`, `groups`), the String-key hash index of lookup tables
(`string_keys`), borrowed Arrow buffers (`borrow`),
software prefetch (`prefetch`), plan expressions as Polars expressions
(`polars_expressions`) and the pane arithmetic of tumbling and sliding windows (`panes`).

Nothing is imported here: the Numba modules compile on first use, and `cep check`
never pays for them."""
