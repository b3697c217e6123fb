// The admin pages' widgets (registry/admin_widgets.py) and the search over settings. A static
// file: the pages forbid inline script. Without it every widget is still a working set of inputs.
(function () {
  'use strict';

  function settingsSearch() {
    const box = document.getElementById('settings-search');
    if (!box) return;
    const rows = Array.from(document.querySelectorAll('tr[data-search]'));
    function apply() {
      const words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      rows.forEach(function (row) {
        const text = row.dataset.search;
        row.classList.toggle('search-hidden', !words.every(function (w) { return text.indexOf(w) !== -1; }));
      });
      document.querySelectorAll('.module').forEach(function (module) {
        const own = module.querySelectorAll('tr[data-search]');
        if (!own.length) return;
        const shown = module.querySelectorAll('tr[data-search]:not(.search-hidden)');
        module.classList.toggle('search-hidden', shown.length === 0);
      });
      const sidebar = document.getElementById('nav-sidebar');
      if (sidebar && words.length && sidebar.getAttribute('aria-expanded') === 'false') {
        const toggle = document.getElementById('toggle-nav-sidebar');
        if (toggle) toggle.click();
      }
      sessionStorage.setItem('stalwart.settingsSearch', box.value);
    }
    box.addEventListener('input', apply);
    box.addEventListener('keydown', function (event) {
      if (event.key === 'Escape') { box.value = ''; apply(); }
      if (event.key === 'Enter') {
        event.preventDefault();
        const first = document.querySelector('tr[data-search]:not(.search-hidden) a');
        if (first) window.location = first.href;
      }
    });
    const stored = sessionStorage.getItem('stalwart.settingsSearch');
    if (stored) { box.value = stored; apply(); }
  }

  function rowEditors() {
    document.querySelectorAll('[data-add-row]').forEach(function (button) {
      const table = document.getElementById(button.dataset.addRow);
      if (!table) return;
      button.hidden = false;
      button.addEventListener('click', function () {
        const body = table.tBodies[0];
        const last = body.rows[body.rows.length - 1];
        const copy = last.cloneNode(true);
        copy.querySelectorAll('input').forEach(function (input) { input.value = ''; });
        copy.querySelectorAll('.rule-status').forEach(function (s) { s.textContent = ''; s.className = 'rule-status'; });
        body.appendChild(copy);
        const first = copy.querySelector('input');
        if (first) first.focus();
      });
    });
  }

  function ruleEditors() {
    document.querySelectorAll('table.rule-editor[data-check-url]').forEach(function (table) {
      const url = table.dataset.checkUrl;
      const timers = new WeakMap();
      function check(input) {
        const status = input.parentNode.querySelector('.rule-status');
        if (!input.value.trim()) { status.textContent = ''; status.className = 'rule-status'; return; }
        fetch(url + '&expr=' + encodeURIComponent(input.value), {credentials: 'same-origin'})
          .then(function (r) { return r.json(); })
          .then(function (answer) {
            if (answer.ok) {
              status.textContent = '✓ valid';
              status.className = 'rule-status ok';
              input.setCustomValidity('');
            } else {
              const where = answer.position === null || answer.position === undefined ? '' : ' (at character ' + (answer.position + 1) + ')';
              status.textContent = answer.error + where;
              status.className = 'rule-status bad';
              if (typeof answer.position === 'number' && document.activeElement === input) {
                input.setSelectionRange(answer.position, Math.min(answer.position + 1, input.value.length));
              }
            }
          })
          .catch(function () { status.textContent = ''; });
      }
      table.addEventListener('input', function (event) {
        const input = event.target;
        if (!input.classList || !input.classList.contains('rule-expr')) return;
        clearTimeout(timers.get(input));
        timers.set(input, setTimeout(function () { check(input); }, 300));
      });
      table.querySelectorAll('input.rule-expr').forEach(check);
    });
  }

  function namePickers() {
    document.querySelectorAll('.perm-picker').forEach(function (picker) {
      const search = picker.querySelector('.perm-search');
      const onlySelected = picker.querySelector('.perm-show-selected');
      const count = picker.querySelector('.perm-count');
      const items = Array.from(picker.querySelectorAll('li'));
      search.hidden = false;
      picker.querySelector('.perm-only-selected').hidden = false;
      function apply() {
        const word = search.value.toLowerCase();
        let selected = 0;
        items.forEach(function (li) {
          const box = li.querySelector('input');
          if (box.checked) selected += 1;
          const hide = (word && li.textContent.toLowerCase().indexOf(word) === -1) || (onlySelected.checked && !box.checked);
          li.classList.toggle('search-hidden', !!hide);
        });
        picker.querySelectorAll('fieldset.perm-group').forEach(function (group) {
          group.classList.toggle('search-hidden', !group.querySelector('li:not(.search-hidden)'));
        });
        count.textContent = selected + ' of ' + items.length + ' selected';
      }
      search.addEventListener('input', apply);
      search.addEventListener('keydown', function (e) { if (e.key === 'Enter') e.preventDefault(); });
      onlySelected.addEventListener('change', apply);
      picker.addEventListener('change', apply);
      apply();
    });
  }

  function start() {
    settingsSearch();
    rowEditors();
    ruleEditors();
    namePickers();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
