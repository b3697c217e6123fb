// Settings › Authentication › Directories: the login filter's preview follows what is typed.
// A static file: the admin pages forbid inline script. Without it the preview shows the stored
// filter, as the server rendered it.
(function () {
  'use strict';

  // RFC 4515 escaping, as directories/filters.py does it at search time.
  function escapeValue(value) {
    return value.replace(/[*()\\\u0000]/g, function (ch) {
      return '\\' + ch.charCodeAt(0).toString(16).padStart(2, '0');
    });
  }

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

  document.addEventListener('DOMContentLoaded', loginFilterPreview);
})();
