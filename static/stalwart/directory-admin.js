// Settings › Authentication › Directories. A static file: the admin pages forbid inline script.
// Without it the page still works: the preview shows the stored filter as the server rendered
// it, and every row of the page stays visible.
(function () {
  'use strict';

  // RFC 4515 escaping, as directories/filters.py does it at search time.
  function escapeValue(value) {
    return value.replace(/[*()\\\u0000]/g, function (ch) {
      return '\\' + ch.charCodeAt(0).toString(16).padStart(2, '0');
    });
  }

  // The login filter's preview follows what is typed.
  function loginFilterPreview() {
    const input = document.getElementById('id_filter_login');
    const preview = document.getElementById('login-filter-preview');
    if (!input || !preview) return;
    const sample = escapeValue(preview.dataset.sample || 'jane@example.org');
    function apply() {
      preview.textContent = input.value.split('?').join(sample);
    }
    input.addEventListener('input', apply);
    apply();
  }

  function setHidden(name, hidden) {
    document.querySelectorAll('.form-row.field-' + name).forEach(function (row) { row.hidden = hidden; });
  }

  // A password's value, variable and file rows follow its source.
  function secretRows(prefix, source, shown) {
    setHidden(prefix, !(shown && source === 'value'));
    setHidden(prefix + '_variable', !(shown && source === 'env'));
    setHidden(prefix + '_file', !(shown && source === 'file'));
  }

  // Only the rows that apply to the chosen kind of database and password source are shown;
  // hidden rows keep their inputs (the server checks only what applies).
  function connectionRows() {
    const store = document.getElementById('id_sql_store');
    const bindSource = document.getElementById('id_bind_secret_kind');
    const sqlSource = document.getElementById('id_sql_auth_secret_kind');
    // Which rows each kind of database uses: the server's list (registry.composites.SqlAuthStore),
    // given to the page as JSON data.
    const rowsData = document.getElementById('sql-store-rows');
    const STORE_ROWS = rowsData ? JSON.parse(rowsData.textContent) : {};
    const ALL_STORE_ROWS = Array.from(new Set(Object.values(STORE_ROWS).flat()));
    function apply() {
      if (bindSource) secretRows('bind_secret', bindSource.value, true);
      if (store) {
        const rows = STORE_ROWS[store.value] || ALL_STORE_ROWS;
        ALL_STORE_ROWS.forEach(function (name) { setHidden(name, rows.indexOf(name) === -1); });
        if (sqlSource) secretRows('sql_auth_secret', sqlSource.value, rows.indexOf('sql_auth_secret') !== -1);
      }
    }
    [store, bindSource, sqlSource].forEach(function (el) { if (el) el.addEventListener('change', apply); });
    apply();
  }

  document.addEventListener('DOMContentLoaded', function () {
    loginFilterPreview();
    connectionRows();
  });
})();
