// Typeset the math of every page with the KaTeX copy under docs/assets/katex/ (no CDN).
// Markdown pages: pymdownx.arithmatex (generic mode) wraps math in .arithmatex as \( \) / \[ \].
// Notebook pages (mkdocs-jupyter): the Markdown cells keep $...$ and $$...$$.
(function () {
  function typeset() {
    if (typeof renderMathInElement === "undefined") return;
    document.querySelectorAll(".arithmatex").forEach(function (el) {
      renderMathInElement(el, {
        delimiters: [
          { left: "\\(", right: "\\)", display: false },
          { left: "\\[", right: "\\]", display: true },
        ],
        throwOnError: false,
      });
    });
    document.querySelectorAll(".jupyter-wrapper .jp-RenderedMarkdown").forEach(function (el) {
      renderMathInElement(el, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "$", right: "$", display: false },
        ],
        throwOnError: false,
      });
    });
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(typeset); // Material's page-load observable (also with instant loading)
  } else {
    document.addEventListener("DOMContentLoaded", typeset);
  }
})();
