// Keeps every countdown on the page ticking. Times are measured against the
// server's clock (body data-now), so a wrong clock on the reader's machine
// does not mark cases overdue.
(function () {
  "use strict";
  var serverNow = Date.parse(document.body.getAttribute("data-now"));
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();

  function words(ms) {
    var left = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(left / 86400), h = Math.floor((left % 86400) / 3600);
    var m = Math.floor((left % 3600) / 60);
    var text = (d ? d + "天" : "") + (h || d ? h + "小时" : "") + m + "分";
    return ms >= 0 ? "还剩 " + text : "超时 " + text;
  }

  function tick() {
    var now = Date.now() + skew;
    var nodes = document.querySelectorAll("[data-due]");
    for (var i = 0; i < nodes.length; i++) {
      var due = Date.parse(nodes[i].getAttribute("data-due"));
      if (isNaN(due)) continue;
      var ms = due - now;
      nodes[i].textContent = words(ms);
      nodes[i].classList.toggle("overdue", ms < 0);
      var row = nodes[i].closest("tr[data-case]");
      if (row) row.classList.toggle("is-overdue", ms < 0);
    }
  }

  tick();
  setInterval(tick, 1000);
})();
