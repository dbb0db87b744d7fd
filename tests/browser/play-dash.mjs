// Plays a stream's MPD in headless Chromium with dash.js (the player page,
// /watch/NAME?player=dash) or Shaka Player (a bare page with Shaka from
// node_modules) and reports, as JSON: seconds played, stalls (playback time not
// advancing), player errors, the player's own live latency, glass-to-glass
// latency read from the demo's burned-in clock, and which Representations it
// played when forced to each in turn.
// Usage: node play-dash.mjs BASE NAME PLAYER(dashjs|shaka) MODE(ll|standard) SECONDS SWITCH(0|1) WIDTHxHEIGHT [AUDIO_ONLY(0|1)]
// WIDTHxHEIGHT: the demo's picture size (where its clock is drawn); 0x0: no clock.
// AUDIO_ONLY=1 (dash.js): the player page's audio-only choice.
// DASH_DEBUG=1 (environment): dash.js's debug log in `console` (its reasons
// for each request, switch and MediaSource reset; how the audio-only defect
// of issue 16 was found).
import puppeteer from 'puppeteer-core';
import { fileURLToPath } from 'node:url';

const [base, name, kind, mode, seconds, doSwitch, size, audioOnly] = process.argv.slice(2);
const [srcW, srcH] = (size || '0x0').split('x').map(Number);
const shakaJs = fileURLToPath(new URL('../../node_modules/shaka-player/dist/shaka-player.compiled.js', import.meta.url));

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
const result = {
  player: kind, mode, played: 0, stalls: 0, playerStalls: 0, errors: [], latency: [], glassToGlass: [],
  clockUnread: 0, frozenTicks: 0, trace: [], media: null, holes: [], reps: [], switched: [], fetched: {}, pageErrors: [], console: [],
};

// Shaka on a page of the origin (same origin as the MPD, as a site would embed it).
async function openShaka(page) {
  await page.goto(`${base}/healthz`, { waitUntil: 'load' });
  await page.setContent('<!doctype html><video id="video" muted autoplay playsinline></video>');
  await page.addScriptTag({ path: shakaJs });
  await page.evaluate(async (mpd, ll) => {
    shaka.polyfill.installAll();
    const video = document.getElementById('video');
    const p = new shaka.Player();
    const state = window.player = { shaka: p, errors: [], stalls: 0, levelsSeen: [], buffers: [] };
    // Every SourceBuffer, to see holes in what is buffered (as the player page does).
    const add = MediaSource.prototype.addSourceBuffer;
    MediaSource.prototype.addSourceBuffer = function (mime) {
      const sb = add.call(this, mime);
      state.buffers.push({ mime, sb });
      return sb;
    };
    state.holes = () => state.buffers.flatMap(({ mime, sb }) => {
      const out = [];
      try {
        const r = sb.buffered;
        for (let i = 1; i < r.length; i++) out.push({ mime, from: r.end(i - 1), to: r.start(i) });
      } catch (e) { /* removed from its MediaSource */ }
      return out;
    });
    p.configure({ streaming: { lowLatencyMode: ll } });
    p.addEventListener('error', e => {
      const d = e.detail || {};
      state.errors.push(`shaka error ${d.code} severity ${d.severity} ${JSON.stringify(d.data || []).slice(0, 200)}`);
    });
    // Shaka buffers before the first frame too; a stall is one after it.
    let started = false;
    video.addEventListener('playing', () => { started = true; });
    p.addEventListener('buffering', e => { if (e.buffering && started) state.stalls++; });
    p.addEventListener('adaptation', () => {
      const t = p.getVariantTracks().find(t => t.active);
      if (t) state.levelsSeen.push(t.originalVideoId);
    });
    p.addEventListener('variantchanged', () => {
      const t = p.getVariantTracks().find(t => t.active);
      if (t) state.levelsSeen.push(t.originalVideoId);
    });
    state.latency = () => {
      const l = p.getStats().liveLatency;
      return Number.isFinite(l) && l > 0 ? l : null;
    };
    state.reps = () => [...new Set(p.getVariantTracks().filter(t => t.videoId !== null).map(t => t.originalVideoId))];
    state.current = () => {
      const t = p.getVariantTracks().find(t => t.active);
      return t ? t.originalVideoId : null;
    };
    state.select = id => {
      p.configure({ abr: { enabled: false } });
      const t = p.getVariantTracks().find(t => t.originalVideoId === id);
      if (t) p.selectVariantTrack(t, false);
    };
    await p.attach(video);
    try {
      await p.load(mpd);
    } catch (e) {
      state.errors.push(`shaka load ${e.code} ${e.message || ''}`);
    }
    video.play().catch(() => {});
  }, `${base}/live/${name}/manifest.mpd${mode === 'll' ? '?ll=1' : ''}`, mode === 'll');
}

// dash.js through the player page.
async function openDashjs(page) {
  await page.goto(`${base}/watch/${name}?player=dash&mode=${mode}${audioOnly === '1' ? '&audio=1' : ''}`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.player && window.player.dash, { timeout: 15000 });
  if (process.env.DASH_DEBUG) await page.evaluate(() => window.player.dash.updateSettings({ debug: { logLevel: 5 } }));
  await page.evaluate(() => {
    const p = window.player;
    p.reps = () => p.dash.getRepresentationsByType('video').map(r => r.id);
    p.current = () => {
      const r = p.dash.getCurrentRepresentationForType('video');
      return r ? r.id : null;
    };
  });
}

// The demo's clock, drawn by src/transcode/pattern.rs (5x7 digits, white on
// black, `HH:MM:SS.mmm` UTC at the bottom left): the picture on screen is
// scaled back to the source size, each glyph cell sampled at its centre.
// Returns seconds between the clock in the picture and now, or null when it
// cannot be read (a frame mid-transition, no clock).
function glassToGlass(w, h) {
  if (!w || !h) return null;
  const video = document.getElementById('video');
  const c = window.__clockCanvas || (window.__clockCanvas = document.createElement('canvas'));
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, w, h);
  const now = Date.now();
  const scale = Math.max(Math.floor(h / 120), 2);
  const x0 = Math.floor(w / 20);
  const y0 = h - Math.floor(h / 12) - 7 * scale;
  const font = [
    [14, 17, 19, 21, 25, 17, 14], [4, 12, 4, 4, 4, 4, 14], [14, 17, 1, 2, 4, 8, 31],
    [31, 2, 4, 2, 1, 17, 14], [2, 6, 10, 18, 31, 2, 2], [31, 16, 30, 1, 1, 17, 14],
    [6, 8, 16, 30, 17, 17, 14], [31, 1, 2, 4, 8, 8, 8], [14, 17, 17, 14, 17, 17, 14],
    [14, 17, 17, 15, 1, 2, 12],
  ];
  const px = ctx.getImageData(0, 0, w, h).data;
  const on = (x, y) => {
    const i = (y * w + x) * 4;
    return px[i] + px[i + 1] + px[i + 2] > 384;
  };
  const digit = pos => {
    const rows = [];
    for (let gy = 0; gy < 7; gy++) {
      let bits = 0;
      for (let gx = 0; gx < 5; gx++) {
        const x = x0 + pos * 6 * scale + gx * scale + (scale >> 1);
        const y = y0 + gy * scale + (scale >> 1);
        if (on(x, y)) bits |= 16 >> gx;
      }
      rows.push(bits);
    }
    const d = font.findIndex(g => g.every((b, i) => b === rows[i]));
    return d < 0 ? null : d;
  };
  const digits = [0, 1, 3, 4, 6, 7, 9, 10, 11].map(digit);
  if (digits.some(d => d === null)) return null;
  const [h1, h2, m1, m2, s1, s2, f1, f2, f3] = digits;
  const shown = (((h1 * 10 + h2) * 60 + m1 * 10 + m2) * 60 + s1 * 10 + s2) * 1000 + f1 * 100 + f2 * 10 + f3;
  const day = 86400000;
  return (((now % day) - shown + day) % day) / 1000;
}

try {
  const page = await browser.newPage();
  page.on('pageerror', e => result.pageErrors.push(String(e)));
  // Which rendition each media segment request was for (`RENDITION/eEPOCH/segN.m4s`).
  const fetchedAt = [];
  page.on('request', r => {
    const m = /\/live\/[^/]+\/([^/]+)\/(?:e\d+\/)?seg\d+\.m4s/.exec(r.url());
    if (m) fetchedAt.push({ rendition: m[1], at: Date.now() });
  });
  // Audio requests, with status and body length, for a failure's report.
  result.audioRequests = [];
  const t0 = Date.now();
  const audioUrl = u => /\/live\/[^/]+\/audio\//.exec(u);
  page.on('requestfinished', async r => {
    if (!audioUrl(r.url())) return;
    const resp = r.response();
    let bytes = -1;
    try { bytes = (await resp.buffer()).length; } catch (e) { /* body gone */ }
    result.audioRequests.push([r.url().split('/').slice(-1)[0], resp.status(), bytes, Date.now() - t0]);
  });
  page.on('requestfailed', r => {
    if (audioUrl(r.url())) result.audioRequests.push([r.url().split('/').slice(-1)[0], 'failed', (r.failure() || {}).errorText, Date.now() - t0]);
  });
  page.on('console', m => {
    if (process.env.DASH_DEBUG) { if (/No segment found|Media segment needed|Effective playback|CmcdController/.test(m.text())) return; result.console.push(`${Date.now() - t0} ${m.text().slice(0, 300)}`); if (result.console.length > 3000) result.console.shift(); return; }
    if ((m.type() === 'error' || m.type() === 'warn') && result.console.length < 50) result.console.push(`${Date.now() - t0} ${m.text().slice(0, 300)}`);
  });
  // Chromium's own media log (the demuxer's reason for a failed append).
  result.mediaLog = [];
  const cdp = await page.createCDPSession();
  await cdp.send('Media.enable');
  cdp.on('Media.playerMessagesLogged', e => {
    for (const m of e.messages) if (m.level === 'error' && result.mediaLog.length < 30) result.mediaLog.push(`${Date.now() - t0} ${m.message.slice(0, 300)}`);
  });
  cdp.on('Media.playerErrorsRaised', e => {
    for (const m of e.errors) if (result.mediaLog.length < 30) result.mediaLog.push(`${Date.now() - t0} raised ${JSON.stringify(m).slice(0, 400)}`);
  });
  await (kind === 'shaka' ? openShaka(page) : openDashjs(page));
  // Wait for playback to start (up to 30 s).
  await page.waitForFunction(() => document.getElementById('video').currentTime > 0.5, { timeout: 30000 });
  // The clock reader runs in the page (its source, evaluated there).
  await page.evaluate(`window.glassToGlass = ${glassToGlass.toString()};`);
  const state = () => page.evaluate((w, h) => ({
    t: document.getElementById('video').currentTime,
    latency: window.player.latency(),
    g2g: window.glassToGlass(w, h),
    errors: window.player.errors.slice(),
    stalls: window.player.stalls,
    current: window.player.current(),
    buffer: (v => v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0)(document.getElementById('video')),
    rate: document.getElementById('video').playbackRate,
    holes: window.player.holes(),
  }), srcW, srcH);
  let last = await state();
  const start = last.t;
  let still = 0;
  const tick = 500;
  const run = async ms => {
    for (let waited = 0; waited < ms; waited += tick) {
      await new Promise(r => setTimeout(r, tick));
      const s = await state();
      result.trace.push([+(s.t - last.t).toFixed(3), +s.buffer.toFixed(3), s.g2g, s.rate]);
      if (s.t <= last.t + 0.05) {
        result.frozenTicks++;
        still += tick;
        if (still === 1500) result.stalls++; // counted once per stall
      } else {
        still = 0;
      }
      for (const h of s.holes) {
        const key = `${h.mime} ${h.from.toFixed(3)}-${h.to.toFixed(3)}`;
        if (!result.holes.includes(key)) result.holes.push(key);
      }
      if (s.latency) result.latency.push(s.latency);
      if (s.g2g !== null) result.glassToGlass.push(s.g2g);
      else if (srcW) result.clockUnread++;
      last = s;
    }
  };
  await run(Number(seconds) * 1000);
  result.played = last.t - start;
  result.reps = await page.evaluate(() => window.player.reps());
  // What was played: the picture's width (0: none) and the SourceBuffers.
  result.media = await page.evaluate(() => ({
    videoWidth: document.getElementById('video').videoWidth,
    buffers: (window.player.buffers || []).map(b => b.mime),
  }));
  if (doSwitch === '1') {
    for (const id of result.reps) {
      const from = Date.now();
      await page.evaluate(id => window.player.select(id), id);
      const ok = await page
        .waitForFunction(id => window.player.current() === id && window.player.levelsSeen.includes(id), { timeout: 15000 }, id)
        .then(() => true, () => false);
      await run(3000);
      // Its media segments were fetched after the switch was asked for.
      const fetched = fetchedAt.filter(f => f.at >= from && f.rendition === id).length;
      result.switched.push({ id, ok, fetched, current: last.current });
    }
  }
  result.errors = last.errors;
  result.playerStalls = last.stalls;
  for (const f of fetchedAt) result.fetched[f.rendition] = (result.fetched[f.rendition] || 0) + 1;
} catch (e) {
  result.pageErrors.push(`driver: ${e.message}`);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
