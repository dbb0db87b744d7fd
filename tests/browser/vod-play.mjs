// Plays a recording (live-to-VOD) on the player page, /watch/ID?mode=vod
// (hls.js, or dash.js with PLAYER=dash), from its start to its end at
// double speed, and reports as JSON: where playback began, the duration the
// player saw, whether the media element ended and where, the media segments
// fetched (by rendition), stalls and player errors.
// Usage: node vod-play.mjs BASE ID [PLAYER(hls|dash)]
import puppeteer from 'puppeteer-core';

const [base, id, kind] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
const result = { first: null, duration: null, ended: false, last: null, fetched: {}, errors: [], pageErrors: [], stalls: 0, frozenTicks: 0 };
const sleep = ms => new Promise(r => setTimeout(r, ms));
try {
  const page = await browser.newPage();
  page.on('pageerror', e => result.pageErrors.push(String(e)));
  page.on('request', r => {
    const m = /\/vod\/[^/]+\/([^/]+)\/seg(\d+)\.m4s/.exec(r.url());
    if (m) (result.fetched[m[1]] ||= []).push(+m[2]);
  });
  // Where playback began: the media element's position at its first
  // timeupdate past 0, noted in the page as it happens (media events do not
  // bubble; a capturing listener on the document sees them). Read after the
  // wait, the position also counted however long a loaded machine took to
  // poll (dash.js was seen "starting" at 1.06 s that way).
  await page.evaluateOnNewDocument(() => {
    document.addEventListener('timeupdate', e => {
      if (window.__firstTime == null && e.target.currentTime > 0) window.__firstTime = e.target.currentTime;
    }, true);
  });
  await page.goto(`${base}/watch/${id}?mode=vod${kind === 'dash' ? '&player=dash' : ''}`, { waitUntil: 'load' });
  await page.waitForFunction(() => window.__firstTime != null, { timeout: 30000 });
  const now = () => page.evaluate(() => {
    const v = document.getElementById('video');
    return { t: v.currentTime, d: v.duration, ended: v.ended, rate: v.playbackRate };
  });
  let s = await now();
  result.first = await page.evaluate(() => window.__firstTime);
  result.duration = s.d;
  await page.evaluate(() => { document.getElementById('video').playbackRate = 2; });
  // Until it ends (or 3 minutes), a stall being 2 s without progress.
  let still = 0;
  for (let i = 0; i < 360 && !s.ended; i++) {
    await sleep(500);
    const n = await now();
    if (n.t <= s.t + 0.05 && !n.ended) {
      result.frozenTicks++;
      still += 500;
      if (still === 2000) result.stalls++;
    } else {
      still = 0;
    }
    s = n;
  }
  result.ended = s.ended;
  result.last = s.t;
  result.duration = s.d;
  result.errors = await page.evaluate(() => window.player.errors.slice());
} catch (e) {
  result.pageErrors.push(`driver: ${e.message}`);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
