// Builds the federated extension with @jupyterlab/builder against JupyterLab's core
// metadata from npm (@jupyterlab/core-meta), so the build needs no Python: it runs before
// the project's venv exists and in a plain Node.js image stage.
//
// The builder reads `<core path>/package.json`; core-meta ships that data as
// core.package.json next to its own npm manifest, so it is copied into a folder of its own.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const coreMeta = require.resolve('@jupyterlab/core-meta/core.package.json');
const corePath = join('node_modules', '.cache', 'codepilot-core-path');
mkdirSync(corePath, { recursive: true });
copyFileSync(coreMeta, join(corePath, 'package.json'));

const builder = join(
  dirname(require.resolve('@jupyterlab/builder/package.json')),
  'lib',
  'build-labextension.js'
);
const args = [builder, '--core-path', corePath, ...process.argv.slice(2), '.'];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
