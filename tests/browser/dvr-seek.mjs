// Plays a stream's DVR master or MPD (/watch/NAME?mode=dvr, hls.js or dash.js) in headless
// Chromium: a few seconds at the live edge, then a seek to the oldest
// second of the rewind window, then back to the live edge; reports, as
// JSON, how far playback advanced after each seek, the segments fetched
// after the seek back (by rendition, and run: `R/eEPOCH`), stalls and player errors.
// Usage: node dvr-seek.mjs BASE NAME [PLAYER(hls|dash)]
import puppeteer from 'puppeteer-core';

const [base, name, kind] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
const result = { seekable: null, live: null, back: null, returned: null, fetchedAfterSeek: {}, errors: [], pageErrors: [], stalls: 0 };
const sleep = ms => new Promise(r => setTimeout(r, ms));
try {
  const page = await browser.newPage();
  page.on('pageerror', e => result.pageErrors.push(String(e)));
  let afterSeek = false;
  page.on('request', r => {
    // RENDITION, or RENDITION/eEPOCH for an earlier run's segment.
    const m = /\/live\/[^/]+\/([^/]+)\/(?:(e\d+)\/)?seg(\d+)\.m4s/.exec(r.url());
    if (m && afterSeek) (result.fetchedAfterSeek[m[2] ? `${m[1]}/${m[2]}` : m[1]] ||= []).push(+m[3]);
  });
  await page.goto(`${base}/watch/${name}?mode=dvr${kind === 'dash' ? '&player=dash' : ''}`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('video').currentTime > 0.5, { timeout: 30000 });
  const now = () => page.evaluate(() => {
    const v = document.getElementById('video');
    const s = v.seekable;
    return { t: v.currentTime, start: s.length ? s.start(0) : null, end: s.length ? s.end(s.length - 1) : null };
  });
  // Plays `ms`, counting stills of 1.5 s; returns how far it advanced.
  const play = async ms => {
    const from = (await now()).t;
    let last = from, still = 0;
    for (let waited = 0; waited < ms; waited += 500) {
      await sleep(500);
      const t = (await now()).t;
      if (t <= last + 0.05) { still += 500; if (still === 1500) result.stalls++; } else still = 0;
      last = t;
    }
    return +(last - from).toFixed(3);
  };
  const seek = async to => {
    await page.evaluate(to => { document.getElementById('video').currentTime = to; }, to);
    await page.waitForFunction(() => !document.getElementById('video').seeking, { timeout: 15000 });
  };
  result.live = await play(3000);
  const range = await now();
  result.seekable = [range.start, range.end];
  afterSeek = true;
  const oldest = range.start + 1;
  await seek(oldest);
  result.back = { to: +oldest.toFixed(3), advanced: await play(6000) };
  afterSeek = false;
  const edge = (await now()).end - 4;
  await seek(edge);
  result.returned = { to: +edge.toFixed(3), advanced: await play(4000) };
  result.errors = await page.evaluate(() => window.player.errors.slice());
  result.aborts = await page.evaluate(() => window.player.aborts.slice());
} catch (e) {
  result.errors.push(String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
