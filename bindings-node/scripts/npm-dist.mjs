// SPDX-License-Identifier: Apache-2.0
// `make dist` (npm part): packs the npm packages in napi-rs's per-platform layout into OUT.
//
//   node bindings-node/scripts/npm-dist.mjs VERSION ADDON_DIR STAGE OUT
//
// STAGE (emptied first) gets the main package and, in its `npm/<platform>/`, the platform ones.
//
// - `jetjobs-VERSION.tgz`: the package (TypeScript layer, loader, `jetjobs` bin), no addon, with
//   `optionalDependencies` on one platform package per napi target at the same VERSION;
// - `jetjobs-<platform>-VERSION.tgz`: each platform's package (`napi create-npm-dirs` writes its
//   package.json) carrying the addon built into ADDON_DIR. The loader (`native.js`) requires it
//   when no addon lies next to it.
// VERSION is the Cargo workspace version: it is stamped into every package.json packed here.
import { execFileSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const [version, addonDir, stage, out] = process.argv.slice(2).map((a, i) => (i === 0 ? a : resolve(a)))
if (!out) {
  console.error('usage: node bindings-node/scripts/npm-dist.mjs VERSION ADDON_DIR STAGE OUT')
  process.exit(2)
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const napi = join(root, 'node_modules/.bin/napi')
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
const writeJson = (path, value) => writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`)

const manifest = readJson(join(root, 'package.json'))
const previous = manifest.version
rmSync(stage, { recursive: true, force: true })
const main = stage
mkdirSync(main, { recursive: true })
mkdirSync(out, { recursive: true })

// The main package: what `files` lists, except the addon, which the platform packages carry.
manifest.version = version
manifest.files = manifest.files.filter((pattern) => !pattern.endsWith('.node'))
for (const pattern of manifest.files) {
  if (pattern.includes('*')) throw new Error(`npm-dist: glob in files: ${pattern}`)
  cpSync(join(root, pattern), join(main, pattern), { recursive: true })
}
for (const extra of ['README.md', 'LICENSE']) {
  if (existsSync(join(root, extra))) copyFileSync(join(root, extra), join(main, extra))
}
delete manifest.scripts // they build from the Rust sources, which the package does not carry
// The generated loader checks the platform package's version against the one it was built for.
const loader = join(main, 'bindings-node/native.js')
writeFileSync(loader, readFileSync(loader, 'utf8').replaceAll(`'${previous}'`, `'${version}'`))
writeJson(join(main, 'package.json'), manifest)

// One package per napi target, as napi-rs lays them out (`<name>-<platform>`, os/cpu/libc set).
const npmDir = join(main, 'npm')
execFileSync(napi, ['create-npm-dirs', '--npm-dir', 'npm'], { cwd: main, stdio: 'inherit' })
manifest.optionalDependencies = {}
const packages = [main]
for (const platform of readdirSync(npmDir).sort()) {
  const dir = join(npmDir, platform)
  const platformManifest = readJson(join(dir, 'package.json'))
  const addon = join(addonDir, platformManifest.main)
  if (!existsSync(addon)) throw new Error(`npm-dist: ${addon} was not built (napi target ${platform})`)
  copyFileSync(addon, join(dir, platformManifest.main))
  manifest.optionalDependencies[platformManifest.name] = version
  packages.push(dir)
}
writeJson(join(main, 'package.json'), manifest)

for (const dir of packages) {
  const [packed] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }),
  )
  const size = statSync(join(out, packed.filename)).size
  console.log(`${join(out, packed.filename)}: ${(size / 1e6).toFixed(1)} MB, ${packed.entryCount} files`)
}
