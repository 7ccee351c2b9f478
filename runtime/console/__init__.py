"""The web console of `cep serve`: server-rendered pages over the operations API.

The pages are shells (layout, headings, forms) rendered by Jinja2; a small script
layer fills them from the documented `/cep/...` routes only, so whatever the console
shows, a user can get from the API too.  Every script and style is served from this
package (no CDN, no build step).
"""

from runtime.console.pages import mount

__all__ = ["mount"]
