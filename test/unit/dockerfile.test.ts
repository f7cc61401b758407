import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = DockerfileParser.parse(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Stage {
  name: string;
  /** The base image, with the Dockerfile's ARG defaults substituted. */
  image: string;
  instructions: Instruction[];
}

/** The build stages in order: each FROM and the instructions up to the next one. */
function stages(): Stage[] {
  const args = new Map(
    dockerfile.getInitialARGs().flatMap((arg) => {
      const property = arg.getProperty();
      const value = property?.getValue();
      return property && value ? [[property.getName(), value] as const] : [];
    }),
  );
  const result: Stage[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const [image = '', , name] = instruction.getArguments().map((a) => a.getValue());
      const resolved = image.replace(/^\$\{?(\w+)\}?$/, (_, arg: string) => args.get(arg) ?? '');
      result.push({ name: name ?? String(result.length), image: resolved, instructions: [] });
    } else {
      result.at(-1)?.instructions.push(instruction);
    }
  }
  return result;
}

const of = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.getKeyword() === keyword);
const text = (instruction: Instruction) => instruction.getArgumentsContent() ?? '';
/** The stage a COPY takes its files from (`--from=`); undefined: the build context. */
const copiedFrom = (copy: Instruction) => (copy as Copy).getFromFlag()?.getValue() ?? undefined;

/** The npm packages a piece of runtime code loads: type-only imports are erased by tsc. */
function importedPackages(dirs: string[]): Set<string> {
  const specifiers: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly) {
      specifiers.push((node.moduleSpecifier as ts.StringLiteral).text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && !node.isTypeOnly) {
      specifiers.push((node.moduleSpecifier as ts.StringLiteral).text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      specifiers.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  for (const dir of dirs) {
    for (const file of readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
      const source = readFileSync(join(root, dir, file), 'utf8');
      visit(ts.createSourceFile(file, source, ts.ScriptTarget.ES2023));
    }
  }
  const packages = specifiers
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:'))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
  return new Set(packages);
}

describe('Dockerfile', () => {
  const all = stages();
  const runtime = all.at(-1)!;

  it('is multi-stage: dependencies and compiled output are made in stages of their own', () => {
    expect(all.length).toBeGreaterThanOrEqual(3);
    expect(new Set(all.map((s) => s.name)).size).toBe(all.length);
    // Every stage the runtime copies from exists.
    const from = of(runtime, 'COPY').flatMap((copy) => copiedFrom(copy) ?? []);
    expect(from.length).toBeGreaterThan(0);
    for (const stage of from) expect(all.map((s) => s.name)).toContain(stage);
  });

  it('builds on a current Node LTS line, the same in every stage', () => {
    const majors = new Set(all.map((s) => /^node:(\d+)/.exec(s.image)?.[1]));
    expect(majors.size).toBe(1);
    const major = Number([...majors][0]);
    // Even majors are the LTS lines; 20 reached its end of life on 2026-04-30, 22 is in
    // maintenance only.
    expect(major % 2, `node:${major} is not an LTS line`).toBe(0);
    expect(major).toBeGreaterThanOrEqual(24);
  });

  it('runs as an unprivileged user, with a health check, the compiled API by default', () => {
    const users = of(runtime, 'USER').map(text);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);

    const [healthcheck] = of(runtime, 'HEALTHCHECK').map(text);
    expect(healthcheck).toMatch(
      /CMD \["node", "scripts\/healthcheck\.mjs", "http:\/\/127\.0\.0\.1:8000\/health\/ready"\]/,
    );
    expect(of(runtime, 'CMD').map(text)).toEqual(['["node", "dist/api/main.js"]']);
    expect(of(runtime, 'ENV').map(text)).toContain('NODE_ENV=production');
  });

  it('puts only production dependencies into the runtime image', () => {
    const [modules] = of(runtime, 'COPY').filter((copy) => text(copy).includes('node_modules'));
    const source = all.find((s) => modules && s.name === copiedFrom(modules));
    expect(source, 'the runtime takes node_modules from a stage').toBeDefined();
    const installs = of(source!, 'RUN').map(text);
    expect(installs.some((r) => /npm ci\b.*--omit=dev|npm prune --omit=dev/.test(r))).toBe(true);
    // Nothing in the runtime installs more.
    expect(of(runtime, 'RUN').map(text).join('\n')).not.toMatch(/npm (ci|install)/);
  });

  it('skips the ONNX Runtime CUDA download wherever npm installs', () => {
    for (const stage of all) {
      const installs = of(stage, 'RUN').filter((r) => /npm (ci|install)/.test(text(r)));
      if (installs.length === 0) continue;
      const env = of(stage, 'ENV').map(text).join('\n');
      for (const install of installs) {
        expect(`${env}\n${text(install)}`, `stage ${stage.name}: ${text(install)}`).toContain(
          'ONNXRUNTIME_NODE_INSTALL=skip',
        );
      }
    }
  });

  it('copies files that exist, and the entry points the commands name are built', () => {
    for (const copy of all.flatMap((s) => of(s, 'COPY'))) {
      if (copiedFrom(copy)) continue;
      const sources = copy
        .getArguments()
        .map((a) => a.getValue())
        .slice(0, -1);
      for (const source of sources) expect(existsSync(join(root, source)), source).toBe(true);
    }
    // dist/api/main.js and dist/workers/main.js come from these (tsconfig.build.json, rootDir .).
    expect(existsSync(join(root, 'api/main.ts'))).toBe(true);
    expect(existsSync(join(root, 'workers/main.ts'))).toBe(true);
  });
});

describe('runtime dependencies', () => {
  it('holds every package the API, the workers and the shared code load, and no dev tool', () => {
    const imported = importedPackages(['api', 'workers', 'shared']);
    const missing = [...imported].filter((name) => !(name in packageJson.dependencies));
    expect(missing, 'loaded at run time but only a dev dependency (or none)').toEqual([]);
    for (const tool of ['tsx', 'esbuild', 'typescript', 'vitest', '@biomejs/biome']) {
      expect(packageJson.dependencies, tool).not.toHaveProperty(tool);
    }
    // Parsing every source file takes seconds on a busy machine.
  }, 30_000);

  it('holds the packages the model registry loads models from (the bundled model)', () => {
    const registry = parseYaml(readFileSync(join(root, 'models/models.yaml'), 'utf8')) as {
      models: Record<string, { backends: Record<string, { source?: string }> }>;
    };
    const sources = Object.values(registry.models).flatMap((model) =>
      Object.values(model.backends ?? {}).flatMap((b) => (b?.source ? [b.source] : [])),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      const name = /^npm:((?:@[^/]+\/)?[^/]+)/.exec(source)?.[1];
      if (name) expect(packageJson.dependencies, source).toHaveProperty(name);
    }
  });
});
