// The landing page: language, and a shortcut to a campaign's viewer page.
import { initLang, applyI18n } from './i18n.js';

initLang(document.getElementById('lang'), () => applyI18n());
document.getElementById('join').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = document.getElementById('join-id').value.trim().toLowerCase();
  if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(id)) location.href = `/c/${id}`;
});
