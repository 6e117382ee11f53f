// ----------------------------------------------------------------- i18n --

// I18N (language -> key -> text) is written in front of the parts by build.rs, from
// i18n/*.json; English is the fallback for a key a language does not have.

function pickLang() {
  const primary = (tag) => String(tag || '').toLowerCase().split(/[-_]/)[0];
  if (OPTS.lang && I18N[primary(OPTS.lang)]) return primary(OPTS.lang);
  const prefs = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language]) || [];
  for (const tag of prefs) if (I18N[primary(tag)]) return primary(tag);
  return 'en';
}
const LANG = pickLang();

function t(key, vars) {
  let s = (I18N[LANG] && I18N[LANG][key]) || I18N.en[key] || key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null ? String(vars[k]) : m));
  return s;
}
function tn(key, n) {
  let rule = 'other';
  try {
    rule = new Intl.PluralRules(LANG).select(n);
  } catch (_) {
    rule = n === 1 ? 'one' : 'other';
  }
  return t(`${key}_${rule === 'one' ? 'one' : 'other'}`, { n });
}
