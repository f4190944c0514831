"use strict";
(function () {
  // Everything shown below comes from the JSON in #data and is set with textContent or
  // attribute values only: a string from a packet is never parsed as markup.
  const page = JSON.parse(document.getElementById("data").textContent);
  // the table and its controls are hidden in the file: without this script they do nothing
  document.querySelectorAll("#all-sessions [hidden]").forEach(function (e) { e.hidden = false; });
  const S = page.strings;
  const C = {};
  page.columns.forEach(function (name, i) { C[name] = i; });
  const PAGE_ROWS = 200;
  // with several files, "#1" is in each: a column names the session's file
  const SEVERAL = page.files.length > 1;
  const SVG = document.getElementById("timeline").namespaceURI;  // no URL in the page
  const rows = page.sessions;
  // the sessions the scan counted, of which rows are those listed (fewer: --only-problems)
  const COUNTED = page.files.reduce(function (n, f) { return n + f.sessions; }, 0);
  const str = function (i) { return i === null || i === undefined ? "" : S[i]; };
  const codes = function (r) {
    const v = r[C.verdicts], out = [];
    for (let i = 0; i < v.length; i += 4) out.push(S[v[i]]);
    return out;
  };
  const problemCode = function (code) {
    const v = page.verdicts[code];
    return v && (v.severity === "error" || v.severity === "warning");
  };
  // numbers inside text compare as numbers: 10.0.0.9 before 10.0.0.10, ring_2 before ring_10
  const natural = function (text) {
    return text.replace(/\d+/g, function (d) { return d.padStart(12, "0"); });
  };
  // "[v6]:port" by the address's value: each of the 8 groups as 4 hex digits ("::" the zero
  // groups it stands for, a dotted IPv4 tail as the last two), so 2001:db8::9 < ::a < ::10 <
  // ::1:0; after every IPv4 address ("[" sorts after the digits natural() gives those)
  const address = function (text) {
    const m = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(text);
    if (m === null) return natural(text);
    let ip = m[1];
    const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
    if (v4 !== null) {
      const b = v4.slice(1).map(Number);
      ip = ip.slice(0, v4.index) + (b[0] * 256 + b[1]).toString(16) + ":"
        + (b[2] * 256 + b[3]).toString(16);
    }
    const halves = ip.split("::");
    const head = halves[0] ? halves[0].split(":") : [];
    const tail = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
    const groups = head.concat(Array(Math.max(0, 8 - head.length - tail.length)).fill("0"), tail);
    return "[" + groups.map(function (g) { return g.toLowerCase().padStart(4, "0"); }).join("")
      + "]:" + m[2].padStart(12, "0");
  };
  // text as a reader looks it up, for sorting and the filter alike: case means nothing (a
  // host name's by RFC 4343, a certificate name's to a reader), an accented letter is its
  // letter (Ärzte with arzte: marks dropped after NFKD, which also unfolds ligatures and
  // full-width forms), ß is ss and the letters drawn with a stroke are their plain letter, as
  // a collation's first level and the browser's own find-in-page have it; the dotless ı stays
  // a letter of its own there, and so here
  const STROKED = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d",
                   "ħ": "h", "ς": "σ", "\u00ad": ""};
  const fold = function (t) {
    return t.toLowerCase().normalize("NFKD").replace(/\p{M}+/gu, "")
      .replace(/[ßæœøłđðħς\u00ad]/g, function (c) { return STROKED[c]; });
  };
  // every text column sorts alike: folded, and numbers inside compare as numbers (MAIL9
  // with mail9 before mail10, CN=Ärzte with a, not after z as its code point would put it)
  const text = function (t) {
    return natural(fold(t));
  };
  const keyOf = {
    number: function (r) { return r[C.file] * 1e9 + r[C.number]; },
    file: function (r) { return text(page.files[r[C.file]].path); },
    client: function (r) { return address(str(r[C.client])); },
    server: function (r) { return address(str(r[C.server])); },
    ehlo: function (r) { return text(str(r[C.ehlo])); },
    tls: function (r) { return text(str(r[C.tls])); },
    cert: function (r) { return text(str(r[C.cert])); },
    verdicts: function (r) { return text(codes(r).join(", ")); },
  };
  let haystack = null;
  // what the count says when "frame N" leaves no session: why none
  let frameNote = null;
  let shown = rows.map(function (_, i) { return i; });
  let first = 0;
  const tbody = document.querySelector("#sessions tbody");
  const count = document.getElementById("count");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Paper has no "next" button: printed, the table holds the rows shown (in their order and
  // filter) up to PRINT_ROWS, and the page on screen, the rows before and after it drawn
  // around it, marked "printed" so that they go again when printing ends (the page's open
  // ladders and focus stay).  Thousands of rows are hundreds of sheets no one reads, and
  // the browser lays them out for tens of seconds before its print dialog shows: past
  // PRINT_ROWS a last row says how many are left out and that a filter prints them.
  const PRINT_ROWS = Number(document.getElementById("sessions").dataset.printRows) || 1000;
  let printing = false;
  const pageEnd = function () { return Math.min(shown.length, first + PAGE_ROWS); };
  const printEnd = function () { return Math.min(shown.length, PRINT_ROWS); };

  function render() {
    tbody.textContent = "";
    const last = pageEnd();
    for (let k = printing ? 0 : first; k < (printing ? printEnd() : last); k++) {
      tbody.appendChild(rowElement(shown[k], k < first || k >= last));
    }
    for (let k = Math.max(first, printing ? printEnd() : last); k < last; k++) {
      tbody.appendChild(rowElement(shown[k], false));
    }
    if (printing) tbody.appendChild(leftOut());
    showCount();
  }

  // the last printed row: how many rows the sheets leave out (none: no row)
  function leftOut() {
    const out = shown.length - printEnd() - Math.max(0, pageEnd() - Math.max(first, printEnd()));
    const tr = el("tr", "printed left-out");
    if (out > 0) {
      const td = el("td", null, out + " more session(s) not printed: the first " + PRINT_ROWS
                    + (first >= PRINT_ROWS ? " and those on screen" : "")
                    + " are; filter the table to print others");
      td.colSpan = SEVERAL ? 8 : 7;
      tr.appendChild(td);
    }
    return tr;
  }

  function showCount() {
    // the rows drawn, as they are: printed, the first ones and the page on screen past them
    const apart = printing && first > printEnd();
    const from = printing ? 0 : first;
    const last = printing && !apart ? Math.max(printEnd(), pageEnd()) : pageEnd();
    const drawn = apart ? "1–" + printEnd() + " and " + (first + 1) + "–" + last
      : (from + 1) + "–" + last;
    const out = printing ? shown.length - (apart ? printEnd() + last - first : last) : 0;
    count.textContent = shown.length
      ? "sessions " + drawn + " of " + shown.length
        + (shown.length < rows.length ? " (filtered from " + rows.length + ")" : "")
        + (out > 0 ? ", printed; " + out + " more left out" : "")
      : rows.length ? frameNote || "no session matches"
        : COUNTED ? "none of the " + COUNTED + " session(s) shown"  // --only-problems
        : "no SMTP session in the capture";
    // aria-disabled, not disabled: a disabled button drops the keyboard's focus to the page's
    // start when the last page is reached; the handlers do nothing past either end
    document.getElementById("prev").setAttribute("aria-disabled", String(first === 0));
    document.getElementById("next").setAttribute("aria-disabled",
                                                 String(pageEnd() >= shown.length));
  }

  function printAll(on) {
    if (on === printing) return;
    printing = on;
    if (on) {
      const before = document.createDocumentFragment();
      for (let k = 0; k < Math.min(first, printEnd()); k++) {
        before.appendChild(rowElement(shown[k], true));
      }
      tbody.insertBefore(before, tbody.firstChild);
      for (let k = pageEnd(); k < printEnd(); k++) tbody.appendChild(rowElement(shown[k], true));
      tbody.appendChild(leftOut());
    } else {
      tbody.querySelectorAll("tr.printed").forEach(function (tr) {
        const next = tr.nextElementSibling;
        if (next && next.classList.contains("detail")) next.remove();
        tr.remove();
      });
    }
    // the open ladders drawn again for the medium: labels cut with notes on paper, whole on screen
    tbody.querySelectorAll("div.ladder").forEach(function (box) {
      box.replaceWith(ladder(Number(box.dataset.index), on));
    });
    showCount();
  }

  function rowElement(i, printed) {
    const r = rows[i];
    const tr = el("tr", printed ? "session printed" : "session");
    tr.tabIndex = 0;  // reached with Tab, opened with Enter or Space
    tr.setAttribute("aria-expanded", "false");
    tr.dataset.number = r[C.number];
    tr.dataset.file = page.files[r[C.file]].path;
    tr.dataset.index = i;
    // what a screen reader says when the row takes the focus (a row has no name of its own)
    // the file by its label: its name, with the folders that tell it from another of that name
    tr.setAttribute("aria-label", "session " + r[C.number]
      + (SEVERAL ? " of " + page.files[r[C.file]].label : "")
      + ", " + str(r[C.client]) + " to " + str(r[C.server]) + ": " + codes(r).join(", "));
    // each cell's text wraps in a box of at most three lines; its title holds all of it
    const cell = function (cls, text) {
      const td = el("td", cls);
      td.appendChild(el("div", "cell", text));
      td.title = td.textContent;
      tr.appendChild(td);
    };
    if (SEVERAL) cell("path", page.files[r[C.file]].path);
    cell("num", r[C.number]);
    cell(null, str(r[C.client]));
    cell(null, str(r[C.server]));
    cell(null, r[C.ehlo] === null ? "-" : str(r[C.ehlo]));
    cell(null, str(r[C.tls]));
    cell(null, str(r[C.cert]));
    const cs = codes(r);
    cell(cs.some(problemCode) ? "problem" : null, cs.join(", "));
    return tr;
  }

  function seconds(us) {
    // a frame stamped before the session's first (a clock stepped back) is "-", not "+-"
    return us === null ? "+? s" : (us < 0 ? "-" : "+") + (Math.abs(us) / 1e6).toFixed(6) + " s";
  }

  // On paper a ladder is scaled to the sheet, so one label of thousands of characters would
  // shrink every arrow to specks: printed, a label longer than PAPER_LABEL is cut, marked
  // "… [n]", and written in full under the ladder as note n, where it wraps.
  const PAPER_LABEL = 64;

  function ladder(i, paper) {
    const r = rows[i], flat = r[C.ladder];
    const n = flat.length / 4;
    const notes = el("ol", "notes");
    const drawn = [];
    for (let k = 0; k < n; k++) {
      const label = S[flat[4 * k + 3]];
      if (!paper || label.length <= PAPER_LABEL) { drawn.push(label); continue; }
      const note = notes.children.length + 1;
      drawn.push(label.slice(0, PAPER_LABEL) + "… [" + note + "]");
      notes.appendChild(el("li", null, "[" + note + "] frame " + (r[C.first_frame] + flat[4 * k])
                           + ": " + label));
    }
    let longest = 0;
    for (const label of drawn) longest = Math.max(longest, label.length);
    const L = 170, R = 470, STEP = 22, TOP = 36, W = R + 140 + 7.5 * longest;
    const box = el("div", "ladder");
    // a screen reader reads the drawing as a list: an item per arrow whose name says in words
    // what only the drawing shows (who sent it to whom, a red arrow)
    // the view box lets paper draw it smaller, whole, where the screen scrolls its box
    const H = TOP + STEP * n + 16;
    const s = svg("svg", {width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "list",
                          "aria-label": "ladder diagram of session " + r[C.number] + ", client "
                            + str(r[C.client]) + ", server " + str(r[C.server])});
    s.appendChild(svg("text", {x: L, y: 14, "text-anchor": "middle", class: "head",
                               "aria-hidden": "true"}, "client " + str(r[C.client])));
    s.appendChild(svg("text", {x: R, y: 14, "text-anchor": "middle", class: "head",
                               "aria-hidden": "true"}, "server " + str(r[C.server])));
    s.appendChild(svg("line", {x1: L, y1: 22, x2: L, y2: TOP + STEP * n, class: "side",
                               "aria-hidden": "true"}));
    s.appendChild(svg("line", {x1: R, y1: 22, x2: R, y2: TOP + STEP * n, class: "side",
                               "aria-hidden": "true"}));
    for (let k = 0; k < n; k++) {
      const frame = r[C.first_frame] + flat[4 * k], us = flat[4 * k + 1], code = flat[4 * k + 2];
      const label = S[flat[4 * k + 3]];
      const s2c = (code & 1) === 1, bad = (code & 8) !== 0;
      const y = TOP + STEP * k + 10;
      const g = svg("g", {class: bad ? "arrow bad" : "arrow", "data-frame": frame,
                          "data-dir": s2c ? "s2c" : "c2s", "data-kind": page.kinds[code >> 1 & 3],
                          role: "listitem",
                          "aria-label": "frame " + frame + ", " + seconds(us) + ", "
                            + (s2c ? "server to client: " : "client to server: ") + label
                            + (bad ? ", marked bad" : "")});
      const x1 = s2c ? R : L, x2 = s2c ? L : R, tip = s2c ? 8 : -8;
      g.appendChild(svg("line", {x1: x1, y1: y, x2: x2 + (s2c ? 2 : -2), y2: y}));
      g.appendChild(svg("polygon", {points: x2 + "," + y + " " + (x2 + tip) + "," + (y - 4)
                                    + " " + (x2 + tip) + "," + (y + 4)}));
      g.appendChild(svg("text", {x: R + 12, y: y + 4, "xml:space": "preserve"},
                        frame + "  " + seconds(us) + "  " + drawn[k]));
      s.appendChild(g);
    }
    box.appendChild(s);
    if (notes.children.length) box.appendChild(notes);
    box.dataset.index = i;
    return box;
  }

  function certDetails(sha1, chain, depth) {
    const c = page.certs[sha1];
    const d = el("details", "cert");
    d.dataset.sha1 = sha1;
    d.appendChild(el("summary", null, chain.role + " certificate " + depth + ": "
                     + (c.subject || "(no subject)")));
    const dl = el("dl");
    const add = function (k, v) {
      if (v === null || v === undefined || v === "") return;
      dl.appendChild(el("dt", null, k));
      dl.appendChild(el("dd", null, Array.isArray(v) ? v.join(", ") || "-" : v));
    };
    add("subject", c.subject);
    add("issuer", c.issuer);
    add("SAN", c.san);
    add("valid from", c.not_before);
    add("valid until", c.not_after);
    add("thumbprint (SHA-1)", c.sha1);
    add("SHA-256", c.sha256);
    add("serial", c.serial);
    add("key", c.key);
    add("signature", c.signature);
    add("extended key usage", c.eku === null ? "any (no extension)" : c.eku);
    add("self-signed", c.self_signed ? "yes" : "no");
    add("parse error", c.parse_error);
    if (depth === 0) {
      add("chain verdict", chain.problem ? chain.problem + ": " + chain.detail
          : (chain.trusted ? "trusted" : chain.detail || "not trusted"));
      add("valid at capture", chain.valid_at_capture);
      add("valid today", chain.valid_today);
      add("path (OpenSSL)", chain.path_valid === null ? null
          : chain.path_valid ? "valid" : "invalid: " + (chain.path_errors
            ? chain.path_errors.map(function (e) { return e[0] + " at depth " + e[1]; })
              .join("; ")
            : chain.path_error || "?"));
      if (chain.expected_name) add("expected name", chain.expected_name
                                   + (chain.name_matches ? " (matches)" : " (does not match)"));
      add("profile notes", chain.profile_notes.length ? chain.profile_notes : "none");
    }
    d.appendChild(dl);
    return d;
  }

  function detail(i) {
    const r = rows[i];
    const tr = el("tr", "detail");
    const td = el("td");
    td.colSpan = SEVERAL ? 8 : 7;
    const v = r[C.verdicts];
    const ul = el("ul", "verdicts");
    for (let k = 0; k < v.length; k += 4) {
      const code = S[v[k]], info = page.verdicts[code] || {};
      const li = el("li", "sev-" + (info.severity || "info"));
      li.appendChild(el("code", null, code));
      li.appendChild(document.createTextNode(": " + S[v[k + 1]]
        + (v[k + 2] !== null ? " [frame " + v[k + 2] + "]" : "")));
      if (S[v[k + 3]]) li.appendChild(el("div", "fix", "fix: " + S[v[k + 3]]));
      ul.appendChild(li);
    }
    td.appendChild(el("div", "where", page.files[r[C.file]].path + ", session " + r[C.number]
                      + ", frames " + r[C.first_frame] + "–" + r[C.last_frame]));
    td.appendChild(ul);
    const logs = r[C.logs];
    if (logs !== null) {
      const lu = el("ul", "logs");
      if (!logs.length) lu.appendChild(el("li", null, "no log conversation joined"));
      for (let k = 0; k < logs.length; k += 4) {
        lu.appendChild(el("li", null, "log: " + S[logs[k]] + ", " + S[logs[k + 1]] + " line "
                          + logs[k + 2] + " (starts " + (logs[k + 3] >= 0 ? "+" : "")
                          + logs[k + 3] + " s from the session)"));
      }
      td.appendChild(lu);
    }
    td.appendChild(ladder(i, printing));
    for (const which of [C.client_chain, C.server_chain]) {
      const ci = r[which];
      if (ci === null) continue;
      const chain = page.chains[ci];
      chain.certs.forEach(function (sha1, depth) { td.appendChild(certDetails(sha1, chain, depth)); });
    }
    tr.appendChild(td);
    return tr;
  }

  function toggle(tr) {
    const next = tr.nextElementSibling;
    const open = !(next && next.classList.contains("detail"));
    if (open) tr.after(detail(Number(tr.dataset.index)));
    else next.remove();
    tr.classList.toggle("open", open);
    tr.setAttribute("aria-expanded", String(open));
  }
  tbody.addEventListener("click", function (ev) {
    const tr = ev.target.closest("tr.session");
    if (tr) toggle(tr);
  });
  tbody.addEventListener("keydown", function (ev) {
    const tr = ev.target;
    if (!tr.matches || !tr.matches("tr.session")) return;
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();  // Space would scroll the page
      toggle(tr);
    }
  });

  let sortKey = "number", sortDir = 1;
  document.querySelectorAll("#sessions th[data-key]").forEach(function (th) {
    th.addEventListener("click", function () {
      const key = th.dataset.key;
      sortDir = key === sortKey ? -sortDir : 1;
      sortKey = key;
      document.querySelectorAll("#sessions th[data-key]").forEach(function (o) {
        o.setAttribute("aria-sort", o === th ? (sortDir > 0 ? "ascending" : "descending") : "none");
      });
      applyOrder();
    });
  });

  function applyOrder() {
    const f = keyOf[sortKey];
    const keys = new Map();
    for (const i of shown) keys.set(i, f(rows[i]));
    const num = sortKey === "number";
    shown.sort(function (a, b) {
      const x = keys.get(a), y = keys.get(b);
      const c = num ? x - y : (x < y ? -1 : x > y ? 1 : 0);
      return c !== 0 ? sortDir * c : a - b;
    });
    first = 0;
    render();
  }

  // What a Wireshark user types to go somewhere: a number alone ("12", or "#12" as the
  // samples write it) is a session number, never any field holding its digits; "frame 1234"
  // (or "frame.number == 1234") the session whose connection that frame is part of, in each
  // file: any frame of it, an ACK or a data segment too (its `frames` runs), or, where
  // those were not read, an arrow of its ladder, its first or its last frame.  Never the
  // sessions merely around it: on a busy relay hundreds of connections span one frame.
  // Whether frame f is one of the frames of session r that no arrow names (an ACK, a data
  // segment): its `frames` text gives each as the distance from the one before it (the
  // first from the session's first frame), digits of DIGITS, high first, the last one from
  // the first half, as the page data writes them.
  const DIGITS = page.frame_digits, HALF = DIGITS.length / 2;

  function unnamed(r, f) {
    const text = r[C.frames];
    let before = r[C.first_frame], v = 0;
    for (let k = 0; k < text.length && before < f; k++) {
      const d = DIGITS.indexOf(text[k]);
      v = v * HALF + d % HALF;
      if (d < HALF) { before += v + 1; v = 0; }
    }
    return before === f;
  }

  const SESSION_QUERY = /^#\s*(\d+)$|^(\d+)$/;
  const FRAME_QUERY = /^frame(?:\.number)?\s*(?:==?|:)?\s*(\d+)$/;

  function matcher(q) {
    frameNote = null;
    let m = SESSION_QUERY.exec(q);
    if (m !== null) {
      const n = Number(m[1] || m[2]);
      return function (i) { return rows[i][C.number] === n; };
    }
    m = FRAME_QUERY.exec(q);
    if (m !== null) {
      const f = Number(m[1]);
      const spans = function (i) {
        return rows[i][C.first_frame] <= f && f <= rows[i][C.last_frame];
      };
      const arrow = function (i) {
        const flat = rows[i][C.ladder], at = f - rows[i][C.first_frame];
        for (let k = 0; k < flat.length; k += 4) if (flat[k] === at) return true;
        return false;
      };
      // a session's own frames the page knows: its arrows, its first and its last frame,
      // and, where they were read, the others (`frames`)
      const own = function (i) {
        if (f === rows[i][C.first_frame] || f === rows[i][C.last_frame] || arrow(i)) return true;
        return rows[i][C.frames] !== null && unnamed(rows[i], f);
      };
      // an ICMP error quoting its connection before its SYN or after its last frame
      const beyond = function (i) {
        return rows[i][C.beyond] !== null && rows[i][C.beyond].includes(f);
      };
      let around = 0, unread = 0;
      for (let i = 0; i < rows.length; i++) {
        if (spans(i)) { around++; if (rows[i][C.frames] === null) unread++; }
      }
      frameNote = "frame " + f + (unread
        ? " is no message, first or last frame of a session: which connection it belongs"
          + " to is not in the report (" + around + " session(s) span it; an ACK or a data"
          + " segment is in no ladder)"
        : around ? " is in no SMTP session's connection (" + around + " session(s) span it)"
        : " is not in any SMTP conversation");
      return function (i) { return (spans(i) && own(i)) || beyond(i); };
    }
    return null;
  }

  function applyFilter() {
    const q = fold(document.getElementById("filter").value.trim());
    const wanted = matcher(q);
    if (wanted !== null) {
      shown = [];
      for (let i = 0; i < rows.length; i++) if (wanted(i)) shown.push(i);
      applyOrder();
      return;
    }
    if (q && haystack === null) {
      // each field as its cell shows it, so that text copied from a cell finds its row, and
      // the thumbprints of the certificates each side sent (hex without separators)
      haystack = rows.map(function (r) {
        const prints = [];
        for (const ci of [r[C.client_chain], r[C.server_chain]]) {
          if (ci === null || ci === undefined) continue;
          for (const sha1 of page.chains[ci].certs) {
            const c = page.certs[sha1];
            prints.push(sha1, c && c.sha256 ? c.sha256 : "");
          }
        }
        return fold([r[C.number], str(r[C.client]), str(r[C.server]), str(r[C.ehlo]),
                     str(r[C.tls]), str(r[C.cert]), codes(r).join(", "),
                     page.files[r[C.file]].path, prints.join(" ")].join("\u0000"));
      });
    }
    // a thumbprint as OpenSSL prints it (2C:74:0A:...) or spaced as Windows shows it once
    const bare = q.replace(/[:\s]/g, "");
    const alt = bare !== q && bare.length >= 8 && /^[0-9a-f]+$/.test(bare) ? bare : null;
    shown = [];
    for (let i = 0; i < rows.length; i++) {
      if (!q || haystack[i].includes(q) || (alt !== null && haystack[i].includes(alt))) {
        shown.push(i);
      }
    }
    applyOrder();
  }

  let timer = null;
  document.getElementById("filter").addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(applyFilter, rows.length > 20000 ? 150 : 0);
  });
  document.getElementById("prev").addEventListener("click", function () {
    if (first === 0) return;
    first = Math.max(0, first - PAGE_ROWS);
    render();
  });
  document.getElementById("next").addEventListener("click", function () {
    if (first + PAGE_ROWS >= shown.length) return;
    first += PAGE_ROWS;
    render();
  });
  document.querySelectorAll("#problems .sample").forEach(function (sp) {
    sp.addEventListener("click", function () {
      const box = document.getElementById("filter");
      box.value = "";
      applyFilter();
      const at = shown.findIndex(function (i) {
        return rows[i][C.number] === Number(sp.dataset.number)
          && page.files[rows[i][C.file]].path === sp.dataset.file;
      });
      if (at < 0) return;
      first = at - (at % PAGE_ROWS);
      render();
      const tr = tbody.querySelector('tr.session[data-index="' + shown[at] + '"]');
      if (tr) { toggle(tr); tr.focus(); tr.scrollIntoView({block: "center"}); }
    });
  });
  // a real print fires beforeprint/afterprint; the print media query also follows emulation
  window.addEventListener("beforeprint", function () { printAll(true); });
  window.addEventListener("afterprint", function () { printAll(false); });
  const paper = window.matchMedia("print");
  paper.addEventListener("change", function () { printAll(paper.matches); });
  render();
})();
