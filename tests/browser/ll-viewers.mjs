// Simulated LL-HLS viewers: each one follows a media playlist the way an
// LL-HLS player does at the live edge: it fetches the part the playlist hints
// (EXT-X-PRELOAD-HINT, answered as it is written), then reloads the playlist
// blocking on the part after it (`_HLS_msn`/`_HLS_part`), and so on.
// Reports, as JSON: requests and errors by object type, bytes, and the
// distinct objects fetched (to set against the origin's requests: fan-in).
// Usage: node ll-viewers.mjs PLAYLIST_URL VIEWERS SECONDS
import http from 'node:http';

const [playlistUrl, viewersArg, secondsArg] = process.argv.slice(2);
const viewers = Number(viewersArg);
const deadline = Date.now() + Number(secondsArg) * 1000;
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const result = { viewers, requests: {}, errors: {}, errorSamples: [], bytes: 0, objects: {}, parts: 0 };

const kind = url => {
  const path = new URL(url).pathname;
  if (path.endsWith('.m3u8')) return new URL(url).search.includes('_HLS_msn') ? 'blocking-playlist' : 'playlist';
  if (/\/part\d+\.\d+\.m4s$/.test(path)) return 'part';
  if (/\/seg\d+\.m4s$/.test(path)) return 'segment';
  if (path.endsWith('.mp4')) return 'init';
  return 'other';
};

// One GET to the end of its body: [status, body] ([0, error] on failure).
const get = url => new Promise(resolve => {
  const req = http.get(url, { agent, timeout: 20000 }, res => {
    const chunks = [];
    res.on('data', c => chunks.push(c));
    res.on('end', () => resolve([res.statusCode, Buffer.concat(chunks)]));
    res.on('error', e => resolve([0, String(e)]));
  });
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('error', e => resolve([0, String(e)]));
});

const fetchCounted = async url => {
  const k = kind(url);
  result.requests[k] = (result.requests[k] || 0) + 1;
  const key = `${k} ${new URL(url).pathname}${new URL(url).search}`;
  result.objects[k] ||= new Set();
  result.objects[k].add(key);
  const [status, body] = await get(url);
  if (status !== 200) {
    result.errors[k] = (result.errors[k] || 0) + 1;
    if (result.errorSamples.length < 10) result.errorSamples.push(`${status} ${url} ${String(body).slice(0, 100)}`);
    return null;
  }
  result.bytes += body.length;
  return body;
};

// The preload hint of a media playlist: [absolute part URL, msn, part].
const hint = (text, base) => {
  const m = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text);
  if (!m) return null;
  const n = /part(\d+)\.(\d+)\.m4s$/.exec(m[1]);
  return n ? [new URL(m[1], base).href, Number(n[1]), Number(n[2])] : null;
};
const initOf = (text, base) => {
  const m = /#EXT-X-MAP:URI="([^"]+)"/.exec(text);
  return m ? new URL(m[1], base).href : null;
};

async function viewer(i) {
  // Viewers arrive over the first second, as a crowd does.
  await new Promise(r => setTimeout(r, (i * 1000) / viewers));
  const first = await fetchCounted(playlistUrl);
  if (!first) return;
  let text = first.toString();
  const init = initOf(text, playlistUrl);
  if (init) await fetchCounted(init);
  while (Date.now() < deadline) {
    const h = hint(text, playlistUrl);
    if (!h) break; // ended
    const [partUrl, msn, part] = h;
    const [body, playlist] = await Promise.all([
      fetchCounted(partUrl),
      fetchCounted(`${playlistUrl}?_HLS_msn=${msn}&_HLS_part=${part}`),
    ]);
    if (body) result.parts++;
    if (!playlist) {
      // Start over from a plain reload, as a player does after an error.
      const again = await fetchCounted(playlistUrl);
      if (!again) await new Promise(r => setTimeout(r, 500));
      else text = again.toString();
      continue;
    }
    text = playlist.toString();
  }
}

await Promise.all(Array.from({ length: viewers }, (_, i) => viewer(i)));
agent.destroy();
const objects = Object.fromEntries(Object.entries(result.objects).map(([k, v]) => [k, v.size]));
process.stdout.write(JSON.stringify({ ...result, objects }) + '\n');
