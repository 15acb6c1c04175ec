// Entry point of the enclave thread. It owns the EnclaveCore; the host talks to it only through
// validated messages (api.ts). In production this is what a TEE runtime (e.g. Gramine) hosts.
import { parentPort, workerData } from 'node:worker_threads';
import { ZodError } from 'zod';
import {
  enclaveApi,
  enclaveInit,
  type EnclaveHandlers,
  type EnclaveReply,
  type EnclaveRequest,
  type Method,
} from './api.ts';
import { EnclaveCore } from '../core.ts';
import { EnclaveError } from './errors.ts';
import { hasCode } from '../../protocol/errors.ts';

const port = parentPort!;
let core: EnclaveCore;
try {
  core = EnclaveCore.open(enclaveInit.parse(workerData));
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ ready: false, error: errorOf(err) });
  process.exit(1);
}

const handlers = {
  info: () => core.info(),
  status: () => core.status(),
  genesis: (p) => core.genesis(p.balances, p.timestampMs),
  beginReplay: (p) => core.beginReplay(p.snapshot, p.verifyEach),
  replayBlocks: (p) => core.replayBlocks(p.blocks),
  finishReplay: () => core.finishReplay(),
  submit: (p) => core.submitAndForward(p.requests, Date.now(), new Set(p.forward)),
  submitForwarded: async (p) => {
    const results = await core.submitForwarded(p.envelope, Date.now());
    const invalid = results.filter((r) => r.status === 'invalid').length;
    return { accepted: results.length - invalid, invalid };
  },
  requeue: (p) => core.requeue(p.hashes, Date.now()),
  propose: (p) => core.propose(p),
  commit: (p) => core.commit(p.hash),
  rewind: (p) => core.rewind(p.number, p.hash),
  importBlock: (p) => core.importBlock(p.block, p.nowMs),
  importBlocks: (p) => core.importBlocks(p.blocks, p.nowMs),
  slotAuthor: (p) => core.slotAuthor(p.slot),
  getter: (p) => ({ reply: core.executeGetter(p.request, Date.now()) }),
  snapshot: () => core.snapshot(),
  keysQuote: () => ({ quote: core.keysQuote() }),
  provisionRequest: () => ({ request: core.provisionRequest(Date.now()) }),
  provisionServe: (p) => core.provisionServe(p.request, Date.now()),
  provisionAccept: (p) => core.provisionAccept(p.request, p.response, Date.now()),
  parentchainInit: (p) => core.parentchainInit(p),
  parentchainImport: (p) => core.parentchainImport(p.blocks),
  parentchainInfo: () => core.parentchainInfo(),
  parentchainMetadata: (p) => core.parentchainMetadata(p.metadata),
  parentchainLoad: () => ({ loaded: core.parentchainLoad() }),
  parentchainDuties: (p) => ({ duties: core.parentchainDuties(p) }),
  unregisterCall: () => core.unregisterCall(),
  finalityVote: (p) => core.finalityVote(p.number),
  anchorCall: (p) => core.anchorCall(p.number, p.votes),
  signExtrinsic: (p) => ({ signature: core.signExtrinsic(p.payload) }),
} satisfies EnclaveHandlers;

function errorOf(err: unknown): { code: string; message: string } {
  if (hasCode(err)) return { code: err.code, message: err.message };
  if (err instanceof ZodError)
    return { code: 'BAD_REQUEST', message: err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
  // Unexpected errors: no message, it could carry enclave data.
  return { code: 'INTERNAL', message: 'internal enclave error' };
}

port.on('message', async (msg: EnclaveRequest | { close: true }) => {
  if ('close' in msg) {
    await core.close();
    port.postMessage({ closed: true });
    return;
  }
  let reply: EnclaveReply;
  try {
    const spec = Object.hasOwn(enclaveApi, msg.method) ? enclaveApi[msg.method as Method] : undefined;
    if (!spec) throw new EnclaveError('UNKNOWN_METHOD', `unknown enclave method ${msg.method}`);
    const params = spec.params.parse(msg.params);
    reply = { id: msg.id, ok: true, result: await (handlers[msg.method as Method] as (p: unknown) => unknown)(params) };
  } catch (err) {
    reply = { id: msg.id, ok: false, error: errorOf(err) };
  }
  port.postMessage(reply);
});
