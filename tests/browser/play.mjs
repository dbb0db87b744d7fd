// Plays /watch/NAME in headless Chromium with hls.js and reports, as JSON:
// seconds played, stalls (playback time not advancing), hls.js errors,
// hls.latency samples, and which renditions it switched to when asked.
// Usage: node play.mjs BASE NAME MODE(ll|standard) SECONDS SWITCH(0|1) [AUDIO_ONLY(0|1)] [QUERY]
// QUERY: more of the page's query string (`token=…` for a signed URL).
// AUDIO_ONLY=1: the page's audio-only choice (the master's audio-only variant).
import puppeteer from 'puppeteer-core';

const [base, name, mode, seconds, doSwitch, audioOnly, query] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
});
const result = { played: 0, stalls: 0, errors: [], switchErrors: [], latency: [], glassToGlass: [], switched: [], levels: 0, labels: [], holes: [], pageErrors: [], media: null };
try {
  const page = await browser.newPage();
  page.on('pageerror', e => result.pageErrors.push(String(e)));
  await page.goto(`${base}/watch/${name}?mode=${mode}${audioOnly === '1' ? '&audio=1' : ''}${query ? `&${query}` : ''}`, { waitUntil: 'load' });
  // Wait for playback to start (up to 30 s).
  await page.waitForFunction(() => document.getElementById('video').currentTime > 0.5, { timeout: 30000 });
  const state = () => page.evaluate(() => ({
    t: document.getElementById('video').currentTime,
    latency: window.player.hls ? window.player.hls.latency : null,
    // Ingest wall-clock (PROGRAM-DATE-TIME) of the picture on screen vs now.
    g2g: window.player.hls && window.player.hls.playingDate ? (Date.now() - window.player.hls.playingDate.getTime()) / 1000 : null,
    errors: window.player.errors.slice(),
    levels: window.player.hls ? window.player.hls.levels.length : 0,
    labels: [...document.querySelectorAll('#level option')].map(o => o.textContent),
    holes: window.player.holes ? window.player.holes() : [],
  }));
  let last = await state();
  const start = last.t;
  let still = 0;
  const tick = 500;
  const run = async (ms) => {
    for (let waited = 0; waited < ms; waited += tick) {
      await new Promise(r => setTimeout(r, tick));
      const s = await state();
      if (s.t <= last.t + 0.05) {
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
      if (s.g2g) result.glassToGlass.push(s.g2g);
      last = s;
    }
  };
  await run(Number(seconds) * 1000);
  result.played = last.t - start;
  // hls.js's appends, when the buffer has a hole: which part was missed.
  if (result.holes.length) result.appended = await page.evaluate(() => window.player.appended || []);
  // What was played: the picture's size, the SourceBuffers, the levels' codecs.
  result.media = await page.evaluate(() => ({
    videoWidth: document.getElementById('video').videoWidth,
    buffers: window.player.buffers.map(b => b.mime),
    levels: window.player.hls.levels.map(l => ({ url: l.url[0], videoCodec: l.videoCodec || null, audioCodec: l.audioCodec || null, height: l.height || 0 })),
  }));
  result.errors = last.errors;
  result.levels = last.levels;
  result.labels = last.labels;
  if (doSwitch === '1') {
    for (let i = 0; i < last.levels; i++) {
      // As the page's picker does: the rendition takes over at the next
      // segment (an immediate switch flushes the buffer, and hls.js then
      // resumes at the new rendition's next IDR, a hole it nudges over).
      await page.evaluate(i => { window.player.hls.nextLevel = i; }, i);
      const ok = await page
        .waitForFunction(i => window.player.levelsSeen.includes(i) && window.player.hls.currentLevel === i, { timeout: 15000 }, i)
        .then(() => true, () => false);
      result.switched.push({ level: i, ok });
      await run(2000);
    }
  }
  result.switchErrors = last.errors.slice(result.errors.length);
} catch (e) {
  result.pageErrors.push(`driver: ${e.message}`);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
