/* Optional conveniences; the report reads fine without them. */
(function () {
  "use strict";
  var controls = document.getElementById("controls");
  if (controls) {
    controls.hidden = false;
    controls.addEventListener("change", function (ev) {
      var box = ev.target;
      if (box && box.dataset && box.dataset.status) {
        document.body.classList.toggle("hide-" + box.dataset.status, !box.checked);
      }
    });
    controls.addEventListener("click", function (ev) {
      var what = ev.target && ev.target.dataset ? ev.target.dataset.details : null;
      if (!what) { return; }
      var all = document.querySelectorAll("details.cell");
      for (var i = 0; i < all.length; i++) { all[i].open = what === "open"; }
    });
  }
  /* a link to a cell opens its details, or the details that lists it with the same
     results (Chromium does this itself; others may not) */
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    if (!id) { return; }
    var el = document.getElementById(id);
    var box = el && el.closest ? el.closest("details") : null;
    if (box && !box.open) {
      box.open = true;
      el.scrollIntoView();
    }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
