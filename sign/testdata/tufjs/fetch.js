// Downloads and verifies one target from a TUF repository with tuf-js, an
// independent TUF client, and prints what it verified as JSON. The sign
// package's tests run it against a repository they publish and serve on
// 127.0.0.1, to prove the repository is standard TUF.
//
// usage: node fetch.js METADATA_URL TARGETS_URL TRUSTED_ROOT_JSON CACHE_DIR TARGET_PATH...
// One JSON line per target on stdout, in order.
// exit status: 0 all verified, 2 a target is not listed, 1 any other failure.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { Updater } = require('tuf-js');

async function main() {
  const [metadataBaseUrl, targetBaseUrl, trustedRoot, cacheDir, ...targetPaths] = process.argv.slice(2);
  if (targetPaths.length === 0) {
    throw new Error('usage: node fetch.js METADATA_URL TARGETS_URL TRUSTED_ROOT_JSON CACHE_DIR TARGET_PATH...');
  }
  const metadataDir = path.join(cacheDir, 'metadata');
  const targetDir = path.join(cacheDir, 'targets');
  fs.mkdirSync(metadataDir, { recursive: true });
  fs.mkdirSync(targetDir, { recursive: true });
  if (!fs.existsSync(path.join(metadataDir, 'root.json'))) {
    fs.copyFileSync(trustedRoot, path.join(metadataDir, 'root.json'));
  }

  const updater = new Updater({ metadataBaseUrl, targetBaseUrl, metadataDir, targetDir });
  await updater.refresh();
  for (const targetPath of targetPaths) {
    await fetchOne(updater, targetDir, targetPath);
  }
}

async function fetchOne(updater, targetDir, targetPath) {
  const info = await updater.getTargetInfo(targetPath);
  if (!info) {
    process.stderr.write(`target ${targetPath} is not listed\n`);
    process.exit(2);
  }
  const out = path.join(targetDir, crypto.createHash('sha256').update(targetPath).digest('hex'));
  await updater.downloadTarget(info, out);
  const data = fs.readFileSync(out);
  process.stdout.write(JSON.stringify({
    path: info.path,
    length: info.length,
    sha256: crypto.createHash('sha256').update(data).digest('hex'),
    custom: info.custom,
  }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`tuf-js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
