/*!
 * parley visitor chat widget.
 *
 * Plain ES2020, no framework, no requests to anything but the parley server this file was
 * loaded from. Joined by parley's build.rs from the parts in assets/widget/ (script parts,
 * widget.css, i18n/*.json; no bundler) and served at /widget.js.
 *
 * Embed:  <script src="https://parley.example.com/widget.js" async></script>
 * Options (attributes on that script tag):
 *   data-lang="de"       force the language (else navigator.languages, else English)
 *   data-open="true"     start with the panel opened
 *   data-color="#0a7d4f" accent colour (any CSS colour)
 *
 * See docs/widget.md.
 */
