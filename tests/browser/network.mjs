// Plays /watch/NAME with hls.js or dash.js in headless Chromium under a network profile
// set through the DevTools protocol (Network.emulateNetworkConditions), and
// reports, as JSON: seconds played, rebuffers (count and seconds), the time
// to the first down-switch, the rendition timeline, hls.js errors (fatal
// ones apart), and the BANDWIDTH of the level it ended on.
// Usage: node network.mjs BASE NAME MODE(ll|standard) PROFILE SECONDS [PLAYER(hls|dash)]
// PROFILE: fiber | 4g | 3g | outage (4G, then nothing for 5 s, then 4G).
import puppeteer from 'puppeteer-core';

const [base, name, mode, profile, seconds, kind = 'hls'] = process.argv.slice(2);
const mbit = (m) => (m * 1e6) / 8; // bytes per second
const PROFILES = {
  fiber: null,
  '4g': { latency: 60, downloadThroughput: mbit(9), uploadThroughput: mbit(9) },
  '3g': { latency: 300, downloadThroughput: mbit(1.6), uploadThroughput: mbit(0.75) },
};
const OUTAGE_AT_MS = 8000;
const OUTAGE_MS = 5000;
// After this long a player has had time to pick its rendition: a rebuffer
// later says the rendition it settled on does not fit the link.
const SETTLED_MS = 12000;

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
const result = {
  profile, player: kind, played: 0, rebuffers: 0, lateRebuffers: 0, rebufferSecs: 0, firstDownSwitchSecs: null,
  timeline: [], errors: [], fatal: [], pageErrors: [], finalLevel: null,
  finalBandwidth: null, levels: [], resumedAfterOutage: null, reloads: 0,
};
try {
  const page = await browser.newPage();
  page.on('pageerror', e => result.pageErrors.push(String(e)));
  page.on('framenavigated', f => { if (f === page.mainFrame()) result.reloads++; });
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  const shape = async (p) => {
    const c = p === 'off'
      ? { offline: true, latency: 0, downloadThroughput: 0, uploadThroughput: 0 }
      : { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1, ...(PROFILES[p] || {}) };
    await cdp.send('Network.emulateNetworkConditions', c);
  };
  await shape(profile === 'outage' ? '4g' : profile);
  await page.goto(`${base}/watch/${name}?mode=${mode}&player=${kind}`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('video').currentTime > 0.5, { timeout: 60000 });
  // hls.js says which errors are fatal; dash.js has no such flag: for it
  // every error event counts as fatal here (it retries loads before it
  // raises one).
  await page.evaluate(() => {
    window.netlog = { fatal: [] };
    const p = window.player;
    if (p.hls) p.hls.on('hlsError', (_, d) => { if (d.fatal) window.netlog.fatal.push(`${d.type}/${d.details}`); });
    if (p.dash) p.dash.on('error', e => window.netlog.fatal.push(`dash.js ${e.error && e.error.code} ${e.error && e.error.message}`));
  });
  result.levels = await page.evaluate(() => {
    const p = window.player;
    if (p.hls) return p.hls.levels.map(l => ({ height: l.height, bitrate: l.bitrate }));
    return p.dash.getRepresentationsByType('video').map(r => ({ id: r.id, height: r.height, bitrate: r.bandwidth }));
  });
  const t0 = Date.now();
  const state = () => page.evaluate(() => {
    const v = document.getElementById('video');
    const p = window.player;
    let level = -1;
    if (p.hls) {
      level = p.hls.currentLevel;
    } else {
      const r = p.dash.getCurrentRepresentationForType('video');
      level = r ? p.dash.getRepresentationsByType('video').findIndex(x => x.id === r.id) : -1;
    }
    return { t: v.currentTime, level, errors: p.errors.slice(), fatal: window.netlog.fatal.slice() };
  });
  let last = await state();
  const start = last.t;
  let still = 0;
  let outage = 'before';
  let tAtOutageEnd = null;
  let startLevel = last.level;
  result.timeline.push({ secs: 0, level: last.level });
  const tick = 250;
  while (Date.now() - t0 < Number(seconds) * 1000) {
    await new Promise(r => setTimeout(r, tick));
    const elapsed = Date.now() - t0;
    if (profile === 'outage' && outage === 'before' && elapsed >= OUTAGE_AT_MS) {
      await shape('off');
      outage = 'on';
    } else if (profile === 'outage' && outage === 'on' && elapsed >= OUTAGE_AT_MS + OUTAGE_MS) {
      await shape('4g');
      outage = 'after';
    }
    const s = await state();
    if (s.t <= last.t + 0.01) {
      still += tick;
      if (still === 500) {
        result.rebuffers++;
        if (elapsed >= SETTLED_MS) result.lateRebuffers++;
      }
      if (still >= 500) result.rebufferSecs += still === 500 ? 0.5 : tick / 1000;
    } else {
      still = 0;
    }
    if (outage === 'after' && tAtOutageEnd === null) tAtOutageEnd = s.t;
    if (s.level !== last.level) {
      result.timeline.push({ secs: +(elapsed / 1000).toFixed(2), level: s.level });
      const h = (i) => (result.levels[i] || {}).bitrate || 0;
      if (result.firstDownSwitchSecs === null && s.level >= 0 && h(s.level) < h(startLevel)) {
        result.firstDownSwitchSecs = +(elapsed / 1000).toFixed(2);
      }
    }
    last = s;
  }
  if (tAtOutageEnd !== null) result.resumedAfterOutage = last.t > tAtOutageEnd + 1;
  result.played = last.t - start;
  result.errors = last.errors;
  result.fatal = last.fatal;
  result.finalLevel = last.level;
  result.finalBandwidth = last.level >= 0 ? result.levels[last.level].bitrate : null;
} catch (e) {
  result.pageErrors.push(`driver: ${e.message}`);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
