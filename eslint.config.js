// Lint: recommended JS + typescript-eslint rules, and the layering that DESIGN.md draws (import-x's
// no-restricted-paths resolves every relative import to a file, so a violation fails `npm test`).
// Type-checking itself is `npm run typecheck`; formatting is prettier (`npm run format:check`).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

/** Host-side folders: untrusted code that drives the enclave through its boundary. */
const HOST = [
  'chain',
  'sync',
  'calls',
  'consensus',
  'sidechain',
  'p2p',
  'parentchain',
  'rpc',
  'metrics',
  'node',
  'cli',
  'client',
  'config',
];
/** What the rest of the node may import of the enclave: the host side of the message boundary. */
const BOUNDARY = ['./enclave/boundary/host.ts', './enclave/boundary/api.ts', './enclave/boundary/errors.ts'];
const others = (...allowed) =>
  ['enclave', 'protocol', 'crypto', ...HOST].filter((d) => !allowed.includes(d)).map((d) => `./src/${d}`);

const zones = [
  // The trusted code base: only itself and the pure shared code.
  {
    target: './src/enclave',
    from: others('enclave', 'protocol', 'crypto'),
    message: 'enclave/ imports only enclave/, protocol/ and crypto/',
  },
  {
    target: './src/protocol',
    from: others('protocol', 'crypto'),
    message: 'protocol/ is pure: it imports only protocol/ and crypto/',
  },
  { target: './src/crypto', from: others('crypto', 'protocol'), message: 'crypto/ imports only crypto/ and protocol/' },
  // Nobody outside enclave/ reaches past its boundary.
  {
    target: HOST.map((d) => `./src/${d}`),
    from: './src/enclave',
    except: BOUNDARY.map((p) => p.replace('./enclave/', './')),
    message: 'only enclave/boundary/{host,api,errors}.ts are importable outside enclave/',
  },
  // The network knows neither chain nor enclave; it carries bytes for whoever registers handlers.
  {
    target: './src/p2p',
    from: others('p2p', 'protocol', 'crypto'),
    message: 'p2p/ knows neither chain nor enclave: it imports only p2p/, protocol/ and crypto/',
  },
  // Lower layers never reach up into wiring, servers or commands.
  {
    target: HOST.filter((d) => d !== 'node' && d !== 'cli').map((d) => `./src/${d}`),
    from: ['./src/node', './src/cli'],
    message: 'only cli/ and node/ import node/; only cli/ imports cli/',
  },
  {
    target: HOST.filter((d) => !['node', 'cli', 'rpc'].includes(d)).map((d) => `./src/${d}`),
    from: './src/rpc',
    message: 'rpc/ is imported only by node/ and cli/',
  },
  {
    target: './src/client',
    from: others('client', 'protocol', 'crypto', 'parentchain'),
    message: 'client/ (the client library) imports only client/, protocol/, crypto/ and the parentchain port',
  },
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        URL: 'readonly',
        structuredClone: 'readonly',
        setImmediate: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
      // Prettier wraps code at 120; this keeps comments there too (a long string or URL stays whole).
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.js'] } } },
    rules: { 'import-x/no-restricted-paths': ['error', { zones }] },
  },
);
