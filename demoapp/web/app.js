// fibercut audience page: one tap opens a virtual account holding ¥1,000,000,
// the page shows the city and datacenter serving it, and the audience
// transfers money to each other while the speaker cuts the cables.
//
// The HTTP API is documented in demoapp/api.go. Money is integer fen from end
// to end: amounts are parsed and formatted as strings, never as floats.
'use strict';

(() => {
  const STORE_ACCOUNT = 'fibercut.account'; // {id, token}
  const STORE_LANG = 'fibercut.lang';       // "zh" | "en"
  const STORE_PENDING = 'fibercut.pending'; // a transfer whose outcome is unknown
  const STORE_RECENT = 'fibercut.recent';   // this browser's last transfers

  const POLL_MS = 1000;               // refresh the account every second
  const POLL_HIDDEN_MS = 5000;        // ...less often when the tab is hidden
  const POLL_TIMEOUT_MS = 4000;       // give up on one poll after this
  const SLOW_MS = 2500;               // a poll slower than this means trouble
  const TRANSFER_TRIES = 10;          // attempts of one transfer, same key
  const TRANSFER_BUDGET_MS = 15000;   // ...within about this long
  const ATTEMPT_TIMEOUT_MS = 5000;    // one attempt
  const SWITCHED_FLASH_MS = 6000;     // how long "now served from" stays up
  const RECENT_MAX = 5;
  const MAX_YUAN_DIGITS = 12;         // keeps fen below 2^53

  const CITIES = {
    hangzhou: { zh: '杭州', en: 'Hangzhou' },
    shanghai: { zh: '上海', en: 'Shanghai' },
    shenzhen: { zh: '深圳', en: 'Shenzhen' },
  };

  const TEXT = {
    zh: {
      tagline: '切光纤演示',
      welcomeTitle: '领取一个体验账户',
      welcomeBody: '点一下，就有一个装着一百万元的虚拟账户，可以给现场的其他人转账。台上剪断杭州机房的光纤时，看看你的账户会怎样。',
      open: '领取账户',
      opening: '正在开户…',
      openFailed: '开户失败：{msg}。请再点一次。',
      hallFull: '现场账户已满，本次演示不再开户。谢谢参与！',
      tooMany: '操作太频繁，请稍等几秒再试。',
      gone: '原来的账户 {id} 已经不在了（可能换了新的实验环境），请重新领取。',
      hello: '{name}',
      balance: '余额',
      servedBy: '当前服务机房',
      home: '归属机房：{where}',
      switchedBadge: '已容灾切换',
      accountId: '我的账户号',
      idHint: '念给朋友听，或复制发给对方，让他给你转账。',
      copy: '复制',
      copied: '已复制',
      transferTitle: '转账',
      to: '收款账户号',
      toPlaceholder: '对方的账户号',
      amount: '金额（元）',
      send: '转账',
      sending: '转账中…',
      retrying: '正在重试（第 {n} 次）。同一笔转账只会扣一次款。',
      sent: '已向 {to} 转账 {amount}，由 {dc} 机房提交。',
      sentReplayed: '已向 {to} 转账 {amount}，由 {dc} 机房提交（重试后确认，只扣了一次款）。',
      failed: '转账失败：{msg}',
      notSent: '暂时无法转账（{msg}），没有扣款。请稍后再试。',
      unknown: '网络中断，结果未知。再点一次“转账”会安全重试，不会重复扣款。',
      errToEmpty: '请填写收款账户号。',
      errToSelf: '不能给自己转账。',
      errAmountEmpty: '请填写金额。',
      errAmountFormat: '金额格式不对，例如 12.34。',
      errAmountDecimals: '金额最多两位小数（精确到分）。',
      errAmountZero: '金额必须大于零。',
      errAmountNegative: '金额不能是负数。',
      errAmountLarge: '金额太大了。',
      recent: '最近转账',
      recentTo: '转给 {to}',
      recentBy: '{dc} 提交',
      forget: '放弃这个账户，领取新的',
      forgetConfirm: '放弃当前账户，领取一个新的？',
      networkError: '网络错误',
      langButton: 'EN',
    },
    en: {
      tagline: 'cut-the-cables demo',
      welcomeTitle: 'Get a demo account',
      welcomeBody: 'One tap gives you a virtual account holding ¥1,000,000 to send to anyone in the room. Watch what happens to it when the speaker cuts the fiber of the Hangzhou datacenters.',
      open: 'Get an account',
      opening: 'Opening your account…',
      openFailed: 'Could not open an account: {msg}. Tap again.',
      hallFull: 'The hall is full: this demo opens no more accounts. Thank you for joining!',
      tooMany: 'Too many tries from your phone: wait a few seconds and try again.',
      gone: 'Your previous account {id} is gone (a new lab?). Get a new one.',
      hello: '{name}',
      balance: 'Balance',
      servedBy: 'Served by',
      home: 'Home datacenter: {where}',
      switchedBadge: 'Failed over',
      accountId: 'My account id',
      idHint: 'Read it out or copy it to a friend so they can send you money.',
      copy: 'Copy',
      copied: 'Copied',
      transferTitle: 'Transfer',
      to: 'To account id',
      toPlaceholder: 'their account id',
      amount: 'Amount (¥)',
      send: 'Send',
      sending: 'Sending…',
      retrying: 'Retrying (attempt {n}). The same transfer is never charged twice.',
      sent: 'Sent {amount} to {to}, committed by {dc}.',
      sentReplayed: 'Sent {amount} to {to}, committed by {dc} (confirmed on retry, charged once).',
      failed: 'Transfer failed: {msg}',
      notSent: 'Could not transfer right now ({msg}); nothing was charged. Try again shortly.',
      unknown: 'The network dropped and the outcome is unknown. Tap Send again to retry safely: it will not be charged twice.',
      errToEmpty: 'Enter the recipient\'s account id.',
      errToSelf: 'You cannot send money to yourself.',
      errAmountEmpty: 'Enter an amount.',
      errAmountFormat: 'Enter an amount like 12.34.',
      errAmountDecimals: 'At most two decimals (fen).',
      errAmountZero: 'The amount must be more than zero.',
      errAmountNegative: 'The amount cannot be negative.',
      errAmountLarge: 'That amount is too large.',
      recent: 'Recent transfers',
      recentTo: 'to {to}',
      recentBy: 'by {dc}',
      forget: 'Drop this account and get a new one',
      forgetConfirm: 'Drop this account and get a new one?',
      networkError: 'network error',
      langButton: '中文',
    },
  };

  // The banner is always bilingual: it is the moment everybody looks at.
  // Each text is [Chinese, English]; on a phone they stack, on a wide
  // screen they read "中文 / English".
  const BANNER = {
    switching: () => ({
      main: ['容灾切换中', 'Switching datacenter…'],
      sub: ['账户正在切换到其他城市的机房', 'moving your account to another city'],
    }),
    switched: (c) => ({
      main: [`已切换到 ${c.zh} ${c.dc}`, `Now served from ${c.en} ${c.dc}`],
      sub: ['资金和数据没有丢失', 'no money or data lost'],
    }),
  };

  function setBilingual(el, pair) {
    const zh = document.createElement('span');
    zh.className = 'zh';
    zh.textContent = pair[0];
    const sep = document.createElement('span');
    sep.className = 'sep';
    sep.textContent = ' / ';
    const en = document.createElement('span');
    en.className = 'en';
    en.textContent = pair[1];
    el.replaceChildren(zh, sep, en);
  }

  // ---- money: integer fen, parsed and formatted as strings ----

  /** formatFen(123456) === "¥1,234.56"; accepts a safe integer, a BigInt or a digit string. */
  function formatFen(fen) {
    let s = String(fen).trim();
    if (!/^-?\d+$/.test(s)) return '—';
    let neg = false;
    if (s[0] === '-') { neg = true; s = s.slice(1); }
    s = s.replace(/^0+(?=\d)/, '').padStart(3, '0');
    const yuan = s.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    const cents = s.slice(-2);
    if (neg && /[1-9]/.test(s)) return '-¥' + yuan + '.' + cents;
    return '¥' + yuan + '.' + cents;
  }

  /**
   * parseAmountFen("12.34") → {fen: 1234}; on bad input → {error: "errAmount…"}.
   * Accepts "12", "12.3", "12.34", ".5", "1,000.50", "¥12", full-width digits.
   */
  function parseAmountFen(input) {
    let s = String(input == null ? '' : input).normalize('NFKC').trim();
    s = s.replace(/^[¥￥]\s*/, '').replace(/\s+/g, '').replace(/[。．]/g, '.');
    if (s === '') return { error: 'errAmountEmpty' };
    // A comma is only a thousands separator ("1,000.50"); "12,34" is refused
    // rather than read as 1234.
    if (s.includes(',')) {
      if (!/^[-+]?\d{1,3}(,\d{3})+(\.\d*)?$/.test(s)) return { error: 'errAmountFormat' };
      s = s.replace(/,/g, '');
    }
    if (/^-/.test(s)) return { error: /[1-9]/.test(s) ? 'errAmountNegative' : 'errAmountZero' };
    if (s[0] === '+') s = s.slice(1);
    const m = /^(\d*)(?:\.(\d*))?$/.exec(s);
    if (!m || (m[1] === '' && (m[2] === undefined || m[2] === ''))) return { error: 'errAmountFormat' };
    const frac = m[2] || '';
    if (frac.length > 2) return { error: 'errAmountDecimals' };
    const whole = m[1].replace(/^0+/, '');
    if (whole.length > MAX_YUAN_DIGITS) return { error: 'errAmountLarge' };
    const digits = (whole + frac.padEnd(2, '0')).replace(/^0+/, '');
    if (digits === '') return { error: 'errAmountZero' };
    return { fen: parseInt(digits, 10) }; // at most 14 digits: exact
  }

  // ---- small helpers ----

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function load(key) {
    try { return JSON.parse(localStorage.getItem(key) || 'null'); } catch (e) { return null; }
  }
  function save(key, value) {
    try {
      if (value === null || value === undefined) localStorage.removeItem(key);
      else localStorage.setItem(key, JSON.stringify(value));
    } catch (e) { /* private mode: the account lives as long as the page */ }
  }

  function newKey() {
    if (window.crypto && typeof crypto.randomUUID === 'function') {
      try { return crypto.randomUUID(); } catch (e) { /* insecure context */ }
    }
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  function cityName(id, lang) {
    const c = CITIES[id];
    if (c) return c[lang];
    return id || '';
  }
  function where(city, dc, lang) {
    return [cityName(city, lang), dc].filter(Boolean).join(' ');
  }

  // api calls the JSON API; it never throws. The result has ok, status (0 on
  // a network error or timeout), network, body (the decoded JSON or null).
  async function api(method, path, body, token, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    const headers = { Accept: 'application/json', 'X-Fibercut-Client': 'page' }; // the gateway records the hall's requests
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, signal: ctl.signal, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined && body !== null) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    try {
      const res = await fetch(path, init);
      const text = await res.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
      return { ok: res.ok, status: res.status, network: false, body: data };
    } catch (e) {
      return { ok: false, status: 0, network: true, body: null };
    } finally {
      clearTimeout(timer);
    }
  }

  function errorMessage(r) {
    if (r.status === 429) return t('tooMany');
    if (r.status === 403 && r.body && r.body.field === 'accounts') return t('hallFull');
    if (r.body && typeof r.body.error === 'string' && r.body.error) return r.body.error;
    if (r.network) return t('networkError');
    return 'HTTP ' + r.status;
  }

  // ---- state ----

  const S = {
    lang: 'en',
    account: null,      // {id, token} from localStorage
    info: null,         // the last Account the API returned
    failures: 0,        // consecutive failed polls
    errState: '',       // state named by the last error response
    pollStarted: 0,     // when the poll in flight started, 0 if none
    transferTrouble: false,
    hadTrouble: false,  // trouble seen since the last "switched" flash
    flashUntil: 0,      // show "now served from" until then
    sending: false,
    deltaTimer: 0,
    pollTimer: 0,
  };

  function t(key, vars) {
    let s = (TEXT[S.lang] && TEXT[S.lang][key]) || TEXT.en[key] || key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (all, k) => (k in vars ? String(vars[k]) : all));
    return s;
  }

  // tNodes is t for messages that name ids: each variable becomes a span
  // that does not wrap, so "sh-a" never breaks at its hyphen.
  function tNodes(key, vars) {
    const out = [];
    const re = /\{(\w+)\}/g;
    const s = t(key);
    let last = 0;
    let m;
    while ((m = re.exec(s)) !== null) {
      if (m.index > last) out.push(document.createTextNode(s.slice(last, m.index)));
      const span = document.createElement('span');
      span.className = 'nowrap';
      span.textContent = m[1] in vars ? String(vars[m[1]]) : m[0];
      out.push(span);
      last = re.lastIndex;
    }
    if (last < s.length) out.push(document.createTextNode(s.slice(last)));
    return out;
  }

  // ---- rendering ----

  function applyLang() {
    document.documentElement.lang = S.lang === 'zh' ? 'zh-CN' : 'en';
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
    $('lang').textContent = t('langButton');
    render();
    renderRecent();
  }

  function troubled(now) {
    const st = (S.info && S.info.state) || '';
    return st === 'switching' || S.errState === 'switching' || S.failures > 0 || S.transferTrouble ||
      (S.pollStarted > 0 && now - S.pollStarted > SLOW_MS);
  }

  function render() {
    const now = Date.now();
    const hasAccount = !!S.account;
    $('welcome').hidden = hasAccount;
    $('account').hidden = !hasAccount;

    const banner = $('banner');
    let bannerState = '';
    let text = null;
    if (hasAccount && troubled(now)) {
      bannerState = 'switching';
      S.hadTrouble = true;
      text = BANNER.switching();
    } else if (hasAccount && S.info && now < S.flashUntil) {
      bannerState = 'switched';
      text = BANNER.switched({ zh: cityName(S.info.served_city, 'zh'), en: cityName(S.info.served_city, 'en'), dc: S.info.served_by || '' });
    }
    if (text && banner.dataset.key !== bannerState + JSON.stringify(text)) {
      banner.dataset.key = bannerState + JSON.stringify(text); // no DOM churn on every poll
      setBilingual($('banner-main'), text.main);
      setBilingual($('banner-sub'), text.sub);
    }
    banner.dataset.state = bannerState;
    banner.hidden = bannerState === '';

    if (!hasAccount) return;
    $('account-id').textContent = S.account.id;
    const info = S.info;
    if (!info) return;
    $('hello').textContent = t('hello', { name: info.name || info.id });
    $('balance').textContent = formatFen(info.balance_fen);
    const served = $('served');
    served.dataset.city = info.served_city || '';
    served.dataset.dc = info.served_by || '';
    $('served-city').textContent = cityName(info.served_city, S.lang);
    $('served-dc').textContent = info.served_by || '';
    $('home').textContent = info.home_dc ? t('home', { where: where(info.home_city, info.home_dc, S.lang) }) : '';
    $('switched-badge').hidden = info.state !== 'switched';
    served.classList.toggle('stale', troubled(now));
  }

  function showDelta(prevFen, nextFen) {
    const d = nextFen - prevFen; // both safe integers
    if (!d) return;
    const el = $('delta');
    el.textContent = (d > 0 ? '+' : '') + formatFen(d);
    el.className = 'delta show ' + (d > 0 ? 'up' : 'down');
    clearTimeout(S.deltaTimer);
    S.deltaTimer = setTimeout(() => { el.className = 'delta'; }, 3000);
  }

  // applyInfo takes a fresh Account (or the parts of it a transfer returns).
  function applyInfo(next) {
    const prev = S.info;
    if (prev && typeof prev.balance_fen === 'number' && typeof next.balance_fen === 'number') {
      showDelta(prev.balance_fen, next.balance_fen);
    }
    const movedDC = prev && prev.served_by && next.served_by && prev.served_by !== next.served_by;
    const becameSwitched = next.state === 'switched' && (prev ? prev.state !== 'switched' || S.hadTrouble : S.hadTrouble);
    if (movedDC || becameSwitched) {
      S.flashUntil = Date.now() + SWITCHED_FLASH_MS;
      S.hadTrouble = false;
      setTimeout(render, SWITCHED_FLASH_MS + 50);
    }
    S.info = Object.assign({}, prev || {}, next);
    S.errState = '';
  }

  // ---- account ----

  async function openAccount() {
    const btn = $('open');
    btn.disabled = true;
    btn.textContent = t('opening');
    $('welcome-msg').textContent = '';
    const r = await api('POST', '/api/accounts', null, null, 10000);
    btn.disabled = false;
    btn.textContent = t('open');
    if (r.status === 403 && r.body && r.body.field === 'accounts') {
      $('welcome-msg').textContent = t('hallFull'); // tapping again will not help
      return;
    }
    if (!r.ok || !r.body || !r.body.id || !r.body.token) {
      $('welcome-msg').textContent = t('openFailed', { msg: errorMessage(r) });
      return;
    }
    S.account = { id: r.body.id, token: r.body.token };
    save(STORE_ACCOUNT, S.account);
    S.info = null;
    S.failures = 0;
    const info = Object.assign({}, r.body);
    delete info.token; // kept only in localStorage, sent only as Authorization
    applyInfo(info);
    render();
    schedulePoll(POLL_MS);
  }

  function forgetAccount(message) {
    S.account = null;
    S.info = null;
    S.failures = 0;
    S.errState = '';
    S.transferTrouble = false;
    S.flashUntil = 0;
    save(STORE_ACCOUNT, null);
    save(STORE_PENDING, null);
    save(STORE_RECENT, null);
    $('result').textContent = '';
    $('result').dataset.kind = '';
    $('welcome-msg').textContent = message || '';
    renderRecent();
    render();
  }

  function schedulePoll(ms) {
    clearTimeout(S.pollTimer);
    S.pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    clearTimeout(S.pollTimer);
    const acct = S.account;
    if (!acct) return;
    if (S.pollStarted) return; // one at a time; the running poll reschedules
    const started = Date.now();
    S.pollStarted = started;
    const slow = setTimeout(render, SLOW_MS + 10);
    const r = await api('GET', '/api/accounts/' + encodeURIComponent(acct.id), null, acct.token, POLL_TIMEOUT_MS);
    clearTimeout(slow);
    S.pollStarted = 0;
    if (S.account !== acct) return; // the account changed meanwhile
    if (r.ok && r.body) {
      S.failures = 0;
      applyInfo(r.body);
    } else if (r.status === 404 || r.status === 401 || r.status === 403) {
      forgetAccount(t('gone', { id: acct.id }));
      return;
    } else {
      S.failures++;
      S.errState = (r.body && r.body.state) || '';
    }
    render();
    const interval = document.hidden ? POLL_HIDDEN_MS : POLL_MS;
    schedulePoll(Math.max(0, interval - (Date.now() - started)));
  }

  // ---- transfers ----

  // setResult shows the outcome of a transfer: text is a string or nodes.
  function setResult(kind, text) {
    const el = $('result');
    el.dataset.kind = kind;
    if (Array.isArray(text)) el.replaceChildren(...text);
    else el.textContent = text;
  }

  // sendTransfer posts one logical transfer, retrying the SAME key on a
  // network error, a 502/503/504 or an "unknown" answer, so money moves at
  // most once. It returns {kind: "ok"|"error"|"failed"|"unknown", r}.
  async function sendTransfer(acct, p) {
    const start = Date.now();
    let last = null;
    let maybeApplied = false;
    for (let attempt = 1; attempt <= TRANSFER_TRIES; attempt++) {
      if (attempt > 1) setResult('pending', t('retrying', { n: attempt }));
      const r = await api('POST', '/api/accounts/' + encodeURIComponent(acct.id) + '/transfers',
        { to: p.to, amount_fen: p.amountFen, key: p.key }, acct.token, ATTEMPT_TIMEOUT_MS);
      if (r.ok && r.body) return { kind: 'ok', r };
      const unknown = !!(r.body && r.body.unknown === true);
      const retryable = r.network || unknown || r.status === 502 || r.status === 503 || r.status === 504;
      if (!retryable) return { kind: 'error', r };
      if (r.network || unknown) maybeApplied = true;
      last = r;
      S.transferTrouble = true;
      if (r.body && r.body.state) S.errState = r.body.state;
      render();
      const wait = Math.min(500 * attempt, 2000);
      if (attempt === TRANSFER_TRIES || Date.now() - start + wait > TRANSFER_BUDGET_MS) break;
      await sleep(wait);
      if (S.account !== acct) break;
    }
    return { kind: maybeApplied ? 'unknown' : 'failed', r: last };
  }

  async function submitTransfer(ev) {
    ev.preventDefault();
    if (S.sending || !S.account) return;
    const acct = S.account;
    const toEl = $('to');
    const amountEl = $('amount');
    toEl.removeAttribute('aria-invalid');
    amountEl.removeAttribute('aria-invalid');

    const to = toEl.value.replace(/\s+/g, '');
    if (!to) { invalid(toEl, t('errToEmpty')); return; }
    if (to === acct.id) { invalid(toEl, t('errToSelf')); return; }
    const amount = parseAmountFen(amountEl.value);
    if (amount.error) { invalid(amountEl, t(amount.error)); return; }

    // One logical transfer, one key. A transfer left unknown is resumed with
    // its key when the same transfer is submitted again.
    let p = load(STORE_PENDING);
    if (!p || p.from !== acct.id || p.to !== to || p.amountFen !== amount.fen) {
      p = { from: acct.id, to, amountFen: amount.fen, key: newKey() };
    }
    save(STORE_PENDING, p);

    S.sending = true;
    const send = $('send');
    send.disabled = true;
    send.textContent = t('sending');
    setResult('pending', t('sending'));

    const res = await sendTransfer(acct, p);

    S.sending = false;
    S.transferTrouble = false;
    send.disabled = false;
    send.textContent = t('send');
    if (S.account !== acct) return;

    const r = res.r;
    if (res.kind === 'ok') {
      save(STORE_PENDING, null);
      const b = r.body;
      const tr = b.transfer || {};
      const dc = tr.committed_by || b.served_by || '?';
      setResult('ok', tNodes(b.replayed ? 'sentReplayed' : 'sent', { to, amount: formatFen(p.amountFen), dc }));
      addRecent({ to, amountFen: p.amountFen, dc, at: Date.now() });
      const upd = {};
      if (typeof b.balance_fen === 'number') upd.balance_fen = b.balance_fen;
      if (b.served_by) upd.served_by = b.served_by;
      if (b.served_city) upd.served_city = b.served_city;
      if (b.state) upd.state = b.state;
      applyInfo(upd);
      S.failures = 0;
      amountEl.value = '';
    } else if (res.kind === 'error') {
      save(STORE_PENDING, null); // a definite "no": the next try is a new transfer
      setResult('error', t('failed', { msg: errorMessage(r) }));
      const field = r.body && r.body.field;
      if (field === 'to') invalid(toEl);
      if (field === 'amount_fen') invalid(amountEl);
    } else if (res.kind === 'failed') {
      save(STORE_PENDING, null); // nothing was applied
      setResult('error', t('notSent', { msg: errorMessage(r) }));
    } else {
      setResult('unknown', t('unknown'));
    }
    render();
    poll();
  }

  function invalid(el, message) {
    el.setAttribute('aria-invalid', 'true');
    if (message) setResult('error', message);
    el.focus();
  }

  // ---- recent transfers ----

  function addRecent(item) {
    const list = (load(STORE_RECENT) || []).filter((x) => x && typeof x === 'object');
    list.unshift(item);
    save(STORE_RECENT, list.slice(0, RECENT_MAX));
    renderRecent();
  }

  function renderRecent() {
    const list = load(STORE_RECENT) || [];
    const ul = $('recent');
    ul.textContent = '';
    list.forEach((x) => {
      const li = document.createElement('li');
      const amt = document.createElement('span');
      amt.className = 'recent-amount';
      amt.textContent = '-' + formatFen(x.amountFen);
      const to = document.createElement('span');
      to.className = 'recent-to';
      to.textContent = t('recentTo', { to: x.to });
      const by = document.createElement('span');
      by.className = 'recent-by';
      by.textContent = t('recentBy', { dc: x.dc });
      li.append(amt, to, by);
      ul.append(li);
    });
    $('recent-card').hidden = list.length === 0;
  }

  // ---- copy ----

  async function copyId() {
    if (!S.account) return;
    const id = S.account.id;
    let ok = false;
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(id); ok = true; } catch (e) { ok = false; }
    }
    if (!ok) {
      const ta = document.createElement('textarea');
      ta.value = id;
      ta.setAttribute('readonly', '');
      ta.className = 'offscreen';
      document.body.append(ta);
      ta.select();
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      ta.remove();
    }
    if (!ok) {
      const range = document.createRange();
      range.selectNodeContents($('account-id'));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      return;
    }
    const btn = $('copy');
    btn.textContent = t('copied');
    setTimeout(() => { btn.textContent = t('copy'); }, 1500);
  }

  // ---- start ----

  function init() {
    const storedLang = load(STORE_LANG);
    S.lang = storedLang === 'zh' || storedLang === 'en' ? storedLang
      : /^zh\b/i.test(navigator.language || '') ? 'zh' : 'en';
    const a = load(STORE_ACCOUNT);
    if (a && typeof a.id === 'string' && typeof a.token === 'string' && a.id && a.token) S.account = { id: a.id, token: a.token };

    $('lang').addEventListener('click', () => {
      S.lang = S.lang === 'zh' ? 'en' : 'zh';
      save(STORE_LANG, S.lang);
      applyLang();
    });
    $('open').addEventListener('click', openAccount);
    $('transfer').addEventListener('submit', submitTransfer);
    $('copy').addEventListener('click', copyId);
    $('forget').addEventListener('click', () => {
      if (window.confirm(t('forgetConfirm'))) forgetAccount('');
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });

    applyLang();
    if (S.account) poll();
  }

  // For tests and the curious: the money helpers, with no side effects.
  window.fibercut = Object.freeze({ formatFen, parseAmountFen });

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
