// The autoreply page's hint as you type: the width count (full-width counts 2, SPEC's East Asian Width
// rule; the page gives the ranges) and the characters the plan refuses. The rules service stays the judge.
(function () {
  "use strict";
  var field = document.getElementById("field-text");
  var count = document.getElementById("text-count");
  var refusedNote = document.getElementById("text-refused");
  if (!field || !count || !refusedNote) { return; }
  var max = parseInt(field.getAttribute("data-max-width"), 10);
  var refused = Array.from(field.getAttribute("data-refused") || "");
  var ranges = (field.getAttribute("data-wide") || "").split(" ").filter(Boolean).map(function (range) {
    var ends = range.split("-");
    return [parseInt(ends[0], 16), parseInt(ends[1], 16)];
  });

  function wide(codePoint) {
    var low = 0, high = ranges.length - 1;
    while (low <= high) {
      var middle = (low + high) >> 1;
      if (codePoint < ranges[middle][0]) { high = middle - 1; }
      else if (codePoint > ranges[middle][1]) { low = middle + 1; }
      else { return true; }
    }
    return false;
  }

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, name) { return String(values[name]); });
  }

  function update() {
    var text = field.value.replace(/\r\n?/g, "\n");
    var used = 0, found = [];
    for (var character of text) {
      used += wide(character.codePointAt(0)) ? 2 : 1;
      if (refused.indexOf(character) >= 0 && found.indexOf(character) < 0) { found.push(character); }
    }
    var over = used > max;
    count.textContent = fill(field.getAttribute(over ? "data-over-text" : "data-count-text"), {width: used, max: max});
    count.className = over ? "error" : "hint";
    count.hidden = false;
    refusedNote.textContent = found.length ? fill(field.getAttribute("data-refused-text"), {characters: found.join(" ")}) : "";
    refusedNote.hidden = found.length === 0;
  }

  field.addEventListener("input", update);
  update();
})();
