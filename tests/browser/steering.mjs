// Plays /watch/NAME (LL-HLS, hls.js) from the origin, whose multivariant
// playlist lists every variant on two CDN pathways, and records where each
// media request went, so the caller can kill one pathway's edge mid-play.
// Prints `PLAYING` once playback starts, then SECONDS later one JSON line:
// samples (wall-clock ms, currentTime), media requests (wall-clock ms, host,
// path, failed), steering manifest loads, hls.js errors.
// Usage: node steering.mjs ORIGIN NAME SECONDS
import puppeteer from 'puppeteer-core';

const [origin, name, seconds] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
const result = { samples: [], requests: [], steering: [], errors: [], pageErrors: [], pathways: [] };
const media = u => /\.(m4s|mp4)(\?|$)/.test(u) || /\.m3u8\?/.test(u);
try {
  const page = await browser.newPage();
  page.on('pageerror', e => result.pageErrors.push(String(e)));
  page.on('requestfinished', r => {
    const u = new URL(r.url());
    const status = r.response() ? r.response().status() : 0;
    if (u.pathname.endsWith('steering.json')) result.steering.push({ at: Date.now(), url: u.pathname + u.search, status });
    else if (media(r.url())) result.requests.push({ at: Date.now(), host: u.host, path: u.pathname, failed: status >= 400 });
  });
  page.on('requestfailed', r => {
    if (!media(r.url())) return;
    const u = new URL(r.url());
    result.requests.push({ at: Date.now(), host: u.host, path: u.pathname, failed: true });
  });
  await page.goto(`${origin}/watch/${name}?mode=ll`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('video').currentTime > 0.5, { timeout: 30000 });
  process.stdout.write('PLAYING\n');
  const until = Date.now() + Number(seconds) * 1000;
  while (Date.now() < until) {
    await new Promise(r => setTimeout(r, 250));
    const s = await page.evaluate(() => ({
      t: document.getElementById('video').currentTime,
      pathway: window.player.hls ? window.player.hls.pathwayPriority && window.player.hls.levels[0] && window.player.hls.levels[0].pathwayId : null,
    }));
    result.samples.push({ at: Date.now(), t: s.t });
    if (s.pathway && !result.pathways.includes(s.pathway)) result.pathways.push(s.pathway);
  }
  result.errors = await page.evaluate(() => window.player.errors.slice());
} catch (e) {
  result.pageErrors.push(`driver: ${e.message}`);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
