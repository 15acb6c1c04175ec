// Entry point of the enclave thread. It owns the EnclaveCore; the host talks to it only through
// validated messages (api.ts). In production this is what a TEE runtime (e.g. Gramine) hosts.
import { parentPort, workerData } from 'node:worker_threads';
import { ZodError } from 'zod';
import { enclaveApi, enclaveInit, type EnclaveReply, type EnclaveRequest, type Method } from './api.ts';
import { EnclaveCore } from '../core.ts';
import { EnclaveError } from './errors.ts';

const port = parentPort!;
let core: EnclaveCore;
try {
  core = EnclaveCore.open(enclaveInit.parse(workerData));
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ ready: false, error: errorOf(err) });
  process.exit(1);
}

type Handler = (p: never) => unknown;
const handlers: Record<Method, Handler> = {
  info: () => core.info(),
  status: () => core.status(),
  genesis: (p: { balances: { account: Uint8Array; amount: bigint }[]; timestampMs: number }) => core.genesis(p.balances, p.timestampMs),
  beginReplay: (p: { snapshot?: Uint8Array; verifyEach: boolean }) => core.beginReplay(p.snapshot, p.verifyEach),
  replayBlocks: (p: { blocks: Uint8Array[] }) => core.replayBlocks(p.blocks),
  finishReplay: () => core.finishReplay(),
  submit: (p: { requests: Uint8Array[]; forward: number[] }) => core.submitAndForward(p.requests, Date.now(), new Set(p.forward)),
  submitForwarded: async (p: { envelope: Uint8Array }) => {
    const results = await core.submitForwarded(p.envelope, Date.now());
    const invalid = results.filter((r) => r.status === 'invalid').length;
    return { accepted: results.length - invalid, invalid };
  },
  requeue: async (p: { hashes: string[] }) => ({ requeued: await core.requeue(p.hashes, Date.now()) }),
  propose: (p: { slot: bigint; timestampMs: number; maxCalls: number; deadlineMs?: number }) => core.propose(p),
  commit: (p: { hash: Uint8Array }) => core.commit(p.hash),
  rewind: (p: { number: number; hash: Uint8Array }) => core.rewind(p.number, p.hash),
  importBlock: (p: { block: Uint8Array; nowMs: number }) => core.importBlock(p.block, p.nowMs),
  importBlocks: (p: { blocks: Uint8Array[]; nowMs: number }) => core.importBlocks(p.blocks, p.nowMs),
  slotAuthor: (p: { slot: bigint }) => core.slotAuthor(p.slot),
  getter: (p: { request: Uint8Array }) => ({ reply: core.executeGetter(p.request, Date.now()) }),
  snapshot: () => core.snapshot(),
  quote: (p: { userData: Uint8Array }) => ({ quote: core.quote(p.userData) }),
  provisionRequest: () => ({ request: core.provisionRequest(Date.now()) }),
  provisionServe: (p: { request: Uint8Array }) => core.provisionServe(p.request, Date.now()),
  provisionAccept: (p: { request: Uint8Array; response: Uint8Array }) => core.provisionAccept(p.request, p.response, Date.now()),
  parentchainInit: (p: Parameters<EnclaveCore['parentchainInit']>[0]) => core.parentchainInit(p),
  parentchainImport: (p: { blocks: Parameters<EnclaveCore['parentchainImport']>[0] }) => core.parentchainImport(p.blocks),
  parentchainInfo: () => core.parentchainInfo(),
  parentchainLoad: () => ({ loaded: core.parentchainLoad() }),
  parentchainDuties: (p: { peerId: string; p2pAddresses: string[] }) => ({ duties: core.parentchainDuties(p) }),
  unregisterCall: () => ({ callData: core.unregisterCall() }),
  anchorCall: (p: { number: number }) => ({ callData: core.anchorCall(p.number) }),
  signExtrinsic: (p: { payload: Uint8Array }) => ({ signature: core.signExtrinsic(p.payload) }),
};

function errorOf(err: unknown): { code: string; message: string } {
  if (err instanceof EnclaveError || (err instanceof Error && 'code' in err && typeof err.code === 'string')) {
    return { code: (err as EnclaveError).code, message: err.message };
  }
  if (err instanceof ZodError) return { code: 'BAD_REQUEST', message: err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
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
    reply = { id: msg.id, ok: true, result: await handlers[msg.method as Method](params as never) };
  } catch (err) {
    reply = { id: msg.id, ok: false, error: errorOf(err) };
  }
  port.postMessage(reply);
});
