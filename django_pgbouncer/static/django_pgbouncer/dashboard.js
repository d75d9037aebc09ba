/*
 * The PgBouncer dashboard: refreshes the server-rendered page in place.
 *
 * Every few seconds it fetches pgbouncer-dashboard-state (same origin, with the
 * admin's session cookie) and writes the values into the elements the template
 * marked with data-field / data-cell. Queries and transactions per second are
 * computed here from the change of PgBouncer's running totals between two looks:
 * PgBouncer's own avg_* columns only move once per stats_period (60 s by default).
 * A failed fetch keeps the last values on screen and says so.
 */
(function () {
  "use strict";

  const root = document.getElementById("pgb-dashboard");
  if (!root) {
    return;
  }
  const stateUrl = root.dataset.stateUrl;
  const refreshMs = 1000 * (Number(root.dataset.refreshSeconds) || 3);
  const timeoutMs = 10000;
  const locale = document.documentElement.lang || undefined;
  const integer = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  const twoDecimals = new Intl.NumberFormat(locale, {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
    useGrouping: false,
  });
  const oneDecimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });

  // One <tbody> per pool (its numbers, then its trouble), before the "no pools" one.
  const table = document.getElementById("pgb-pool-table");
  const poolTemplate = document.getElementById("pgb-row-template");
  const emptyBody = document.getElementById("pgb-empty");

  // What tests and curious operators can read from the console.
  const api = {
    refreshes: 0,
    failures: 0,
    lastError: "",
    refreshNow: () => refresh(),
  };
  window.pgbouncerDashboard = api;

  // The previous look at each pool's totals: {checkedAt, queries, xacts}.
  let previous = new Map();
  let lastCheckedAt = null;
  let timer = null;
  let busy = false;
  let animate = false; // not while taking over the server's first render

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function clock(date) {
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function poolKey(pool) {
    return pool.database + "/" + pool.user;
  }

  function flash(element) {
    element.classList.remove("pgb-changed");
    void element.offsetWidth; // restart the animation
    element.classList.add("pgb-changed");
  }

  function setText(element, text) {
    if (element.textContent !== text) {
      element.textContent = text;
      if (animate && element.classList.contains("pgb-big")) {
        flash(element);
      }
    }
  }

  function setField(row, name, text) {
    row.querySelectorAll('[data-field="' + name + '"]').forEach((el) => setText(el, text));
  }

  function setAlert(row, cell, on) {
    const element = row.querySelector('[data-cell="' + cell + '"]');
    if (element) {
      element.classList.toggle("pgb-alert", on);
    }
  }

  function setBar(row, name, value, size) {
    const element = row.querySelector('[data-bar="' + name + '"]');
    if (element) {
      const share = size > 0 ? Math.min(100, (100 * value) / size) : 0;
      element.style.width = share.toFixed(1) + "%";
    }
  }

  function rate(now, before, field) {
    if (!before || now.checkedAt <= before.checkedAt || now[field] < before[field]) {
      return null; // first look, same instant, or PgBouncer restarted (totals reset)
    }
    return (now[field] - before[field]) / (now.checkedAt - before.checkedAt);
  }

  function sample(pool, checkedAt) {
    return {
      checkedAt: checkedAt,
      queries: pool.total_query_count,
      xacts: pool.total_xact_count,
    };
  }

  function rateShow(row, field, live, average) {
    const element = row.querySelector('[data-field="' + field + '"]');
    if (live === null) {
      setText(element, integer.format(average));
      element.title = "PgBouncer's average over its stats_period";
      element.dataset.source = "average";
    } else {
      setText(element, oneDecimal.format(live));
      element.title = "Counted between the last two refreshes";
      element.dataset.source = "live";
    }
  }

  function poolBodies() {
    return Array.from(table.querySelectorAll(":scope > tbody.pgb-pool"));
  }

  function bodyFor(pool) {
    const key = poolKey(pool);
    const found = poolBodies().find((body) => body.dataset.pool === key);
    if (found) {
      return found;
    }
    const body = poolTemplate.content.firstElementChild.cloneNode(true);
    body.dataset.pool = key;
    body.dataset.database = pool.database;
    body.dataset.user = pool.user;
    return body;
  }

  function poolRender(pool, checkedAt) {
    const row = bodyFor(pool);
    const key = poolKey(pool);
    setField(row, "database", pool.database);
    setField(row, "user", pool.user);
    setField(row, "mode", pool.mode);
    setField(row, "clients_active", integer.format(pool.clients_active));
    setField(row, "clients_waiting", integer.format(pool.clients_waiting));
    setField(row, "servers_active", integer.format(pool.servers_active));
    setField(row, "servers_idle", integer.format(pool.servers_idle));
    setField(row, "servers_used", integer.format(pool.servers_used));
    setField(row, "pool_size", integer.format(pool.pool_size));
    setBar(row, "servers_active", pool.servers_active, pool.pool_size);
    setBar(row, "servers_used", pool.servers_used, pool.pool_size);
    setBar(row, "servers_idle", pool.servers_idle, pool.pool_size);
    setField(row, "maxwait_seconds", twoDecimals.format(pool.maxwait_seconds));
    setField(row, "avg_query_ms", twoDecimals.format(pool.avg_query_ms));
    setField(row, "avg_wait_ms", twoDecimals.format(pool.avg_wait_ms));
    setField(row, "queries_per_second_avg", integer.format(pool.queries_per_second));
    setField(row, "transactions_per_second_avg", integer.format(pool.transactions_per_second));
    setField(row, "total_query_count", integer.format(pool.total_query_count));
    setField(row, "total_xact_count", integer.format(pool.total_xact_count));

    const now = sample(pool, checkedAt);
    const before = previous.get(key);
    rateShow(row, "queries_per_second", rate(now, before, "queries"), pool.queries_per_second);
    rateShow(row, "transactions_per_second", rate(now, before, "xacts"), pool.transactions_per_second);

    const trouble = pool.trouble || [];
    row.classList.toggle("pgb-trouble", trouble.length > 0);
    setAlert(row, "clients_waiting", pool.clients_waiting > 0);
    setAlert(row, "servers", Boolean(pool.at_limit));
    setAlert(row, "maxwait", Boolean(pool.wait_exceeded));
    const list = row.querySelector('[data-field="trouble"]');
    const shown = Array.from(list.children, (li) => li.textContent);
    if (shown.join("\n") !== trouble.join("\n")) {
      list.replaceChildren(
        ...trouble.map((text) => {
          const li = document.createElement("li");
          li.textContent = text;
          return li;
        })
      );
    }
    row.querySelector('[data-cell="trouble"]').hidden = trouble.length === 0;
    return [key, now, row];
  }

  // Several PgBouncer processes: one row each, written afresh on every look.
  const processCells = [
    "clients_active",
    "clients_waiting",
    "servers_active",
    "servers_idle",
    "transactions_per_second",
    "total_xact_count",
  ];

  function processesRender(state) {
    const processes = state.processes || [];
    document.getElementById("pgb-processes").hidden = processes.length === 0;
    const rows = processes.map((process) => {
      const row = document.createElement("tr");
      row.dataset.process = process.address;
      row.classList.toggle("pgb-trouble", !process.reachable);
      const head = document.createElement("th");
      head.scope = "row";
      head.dataset.field = "address";
      head.textContent = process.address;
      const status = document.createElement("td");
      status.dataset.field = "status";
      status.textContent = process.reachable ? process.version : "unreachable";
      row.append(head, status);
      for (const name of processCells) {
        const cell = document.createElement("td");
        cell.className = "pgb-n";
        cell.dataset.field = name;
        cell.textContent = integer.format(process[name]);
        row.append(cell);
      }
      return row;
    });
    document.getElementById("pgb-process-rows").replaceChildren(...rows);
  }

  function message(kind, state, strong, text) {
    const li = document.createElement("li");
    li.className = kind;
    li.dataset.state = state;
    const b = document.createElement("strong");
    b.textContent = strong;
    li.append(b, " " + text);
    return li;
  }

  function messagesRender(state) {
    const items = [];
    if (!state.configured) {
      items.push(message("warning", "not-configured", "PgBouncer is not configured.", state.error));
    } else if (!state.reachable) {
      items.push(message("error", "unreachable", "PgBouncer is unreachable.", state.error));
    } else {
      for (const process of state.processes || []) {
        if (!process.reachable) {
          items.push(message("error", "process-unreachable",
            "PgBouncer process " + process.address + " is unreachable.", process.error));
        }
      }
      for (const pool of state.pools) {
        if (pool.trouble.length) {
          const li = document.createElement("li");
          li.className = "warning";
          li.dataset.state = "trouble";
          const name = document.createElement("strong");
          name.textContent = pool.database;
          li.append("Pool ", name, " (user " + pool.user + "): " + pool.trouble.join("; ") + ".");
          items.push(li);
        }
      }
    }
    const list = document.getElementById("pgb-messages");
    const before = Array.from(list.children, (li) => li.textContent.trim()).join("\n");
    const after = items.map((li) => li.textContent.trim()).join("\n");
    if (before !== after) {
      list.replaceChildren(...items);
    }
  }

  function statusRender(state) {
    let status = "ok";
    let label = "Healthy";
    if (!state.configured) {
      status = "not-configured";
      label = "Not configured";
    } else if (!state.reachable) {
      status = "unreachable";
      label = "Unreachable";
    } else if (state.trouble) {
      status = "trouble";
      label = "Needs attention";
    }
    root.dataset.status = status;
    setText(document.getElementById("pgb-status"), label);
    const version = document.getElementById("pgb-version");
    version.hidden = !state.version;
    setText(version, state.version || "");
    const count = state.pools.length;
    setText(document.getElementById("pgb-pool-count"), count + (count === 1 ? " pool" : " pools"));
    document.getElementById("pgb-pool-count-line").hidden = !state.reachable;
  }

  function updatedShow(checkedAt) {
    const element = document.getElementById("pgb-updated");
    const when = new Date(checkedAt * 1000);
    element.dateTime = when.toISOString();
    element.textContent = clock(when);
  }

  function render(state) {
    statusRender(state);
    messagesRender(state);
    processesRender(state);
    document.getElementById("pgb-pools").hidden = !state.reachable;
    const seen = new Map();
    const bodies = [];
    for (const pool of state.pools) {
      const [key, now, body] = poolRender(pool, state.checked_at);
      seen.set(key, now);
      bodies.push(body);
    }
    for (const body of poolBodies()) {
      if (!seen.has(body.dataset.pool)) {
        body.remove();
      }
    }
    // PgBouncer's order; a new pool goes where it belongs, the others stay put.
    bodies.forEach((body, i) => {
      const wanted = i === 0 ? table.tHead.nextElementSibling : bodies[i - 1].nextElementSibling;
      if (body !== wanted) {
        table.insertBefore(body, wanted);
      }
    });
    emptyBody.hidden = state.pools.length > 0;
    previous = seen;
    lastCheckedAt = state.checked_at;
    updatedShow(state.checked_at);
  }

  function failureShow(reason) {
    api.failures += 1;
    api.lastError = reason;
    const note = document.getElementById("pgb-fetch-error");
    const kept = lastCheckedAt === null ? "" : "; showing the values from " + clock(new Date(lastCheckedAt * 1000));
    note.textContent = "Refresh failed at " + clock(new Date()) + " (" + reason + ")" + kept + ".";
    note.hidden = false;
    root.classList.add("pgb-stale");
  }

  function failureClear() {
    api.lastError = "";
    document.getElementById("pgb-fetch-error").hidden = true;
    root.classList.remove("pgb-stale");
  }

  async function stateFetch() {
    const controller = new AbortController();
    const abort = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const response = await fetch(stateUrl, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
        // The admin answers a lapsed session with a redirect to its login page.
        redirect: "manual",
        signal: controller.signal,
      });
      if (response.type === "opaqueredirect") {
        throw new Error("logged out: reload the page to log in again");
      }
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return await response.json();
    } catch (error) {
      if (error.name === "AbortError") {
        throw new Error("no answer in " + timeoutMs / 1000 + " s");
      }
      throw error;
    } finally {
      clearTimeout(abort);
    }
  }

  async function refresh() {
    if (busy) {
      return; // the fetch under way schedules the next one
    }
    busy = true;
    clearTimeout(timer);
    timer = null;
    try {
      if (!document.hidden) {
        render(await stateFetch());
        api.refreshes += 1;
        failureClear();
      }
    } catch (error) {
      failureShow(error.message || String(error));
    } finally {
      busy = false;
      timer = setTimeout(refresh, refreshMs);
    }
  }

  // The server's first render is the first look: rates start with the first fetch.
  const initial = document.getElementById("pgb-initial-state");
  if (initial) {
    render(JSON.parse(initial.textContent));
  }
  animate = true;
  document.getElementById("pgb-refresh-note").hidden = false;
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      refresh();
    }
  });
  timer = setTimeout(refresh, refreshMs);
})();
