// Parses each playlist URL with hls-parser (non-strict) and prints, as JSON,
// every rule it reports: {"<url>": ["message", ...], ...}.
import HLS from 'hls-parser';

const reported = [];
console.error = (...args) => reported.push(args.join(' '));
HLS.setOptions({ strictMode: false, silent: false });

const out = {};
for (const url of process.argv.slice(2)) {
  reported.length = 0;
  const res = await fetch(url);
  const text = await res.text();
  if (!res.ok) {
    out[url] = [`HTTP ${res.status}`];
    continue;
  }
  try {
    HLS.parse(text);
  } catch (e) {
    reported.push(`exception: ${e.message}`);
  }
  out[url] = [...reported];
}
process.stdout.write(JSON.stringify(out) + '\n');
