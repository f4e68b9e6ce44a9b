// Runs against a live market started by tests/integration/test_typescript_client.py, which
// uploads learnwares with the Python SDK and passes what it expects through the environment.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { MarketClient, MarketError, float64Tensor } from '../src/market';

const address = process.env.LWM_MARKET ?? '';
const expected = JSON.parse(process.env.LWM_EXPECTED ?? '{}') as {
  ids: string[];
  otherMarketIds: string[];
  topId: string;
  upload: { zip: string; semanticSpec: Record<string, unknown> };
  userSpec: { z: number[][]; beta: number[]; gamma: number };
};

test('lists, searches and downloads from a live gateway', { skip: !address && 'LWM_MARKET not set' }, async () => {
  const client = new MarketClient(address);
  try {
    const listed = await client.listLearnwares();
    assert.deepEqual(new Set(listed.map((lw) => lw.id)), new Set(expected.ids));
    assert.ok(listed.every((lw) => lw.status === 'LEARNWARE_STATUS_USABLE'));

    const semantic = await client.searchLearnware({ name: 'demo-table' });
    assert.equal(semantic.searchPath, 'semantic');
    assert.equal(semantic.singleResults.length, expected.ids.length);

    const { z, beta, gamma } = expected.userSpec;
    const statistical = await client.searchLearnware(
      { data: ['Table'] },
      { statSpec: { type: 'RKMETableSpecification', z: float64Tensor(z), beta: float64Tensor(beta), gamma } },
    );
    assert.equal(statistical.searchPath, 'statistical');
    assert.equal(statistical.singleResults[0].learnware?.id, expected.topId);

    const info = await client.getLearnware(expected.topId);
    const zip = await client.downloadLearnware(expected.topId);
    assert.equal(zip.length, Number(info.zipSize));
    assert.equal(createHash('sha256').update(zip).digest('hex'), info.zipSha256);
    assert.equal(zip.subarray(0, 2).toString(), 'PK');

    await assert.rejects(client.getLearnware('no-such-id'), (error: unknown) => error instanceof MarketError && error.code === 'NOT_FOUND');
  } finally {
    client.close();
  }
});

test('a named market lists and searches only its own learnwares', { skip: !address && 'LWM_MARKET not set' }, async () => {
  const other = new MarketClient(address, 60_000, 'other');
  try {
    const listed = await other.listLearnwares();
    assert.deepEqual(listed.map((lw) => lw.id).sort(), [...expected.otherMarketIds].sort());
    assert.ok(listed.every((lw) => lw.marketId === 'other'));
    const found = await other.searchLearnware({ name: 'demo-table' });
    assert.deepEqual(found.singleResults.map((r) => r.learnware?.id).sort(), [...expected.otherMarketIds].sort());
    const fromDefault = await other.getLearnware(expected.topId); // ids are global
    assert.equal(fromDefault.marketId, 'default');
    await assert.rejects(new MarketClient(address, 60_000, 'bad name!').listLearnwares(), (error: unknown) => error instanceof MarketError && error.code === 'INVALID_ARGUMENT');
  } finally {
    other.close();
  }
});

test('an upload is searched at once, stored once when repeated, and its deletion seen', { skip: !address && 'LWM_MARKET not set' }, async () => {
  const client = new MarketClient(address, 300_000, 'ts-writes');
  try {
    const zip = readFileSync(expected.upload.zip);
    const added = await client.addLearnware(zip, expected.upload.semanticSpec, { clientRequestId: 'ts-upload-1' });
    assert.equal(added.learnware.status, 'LEARNWARE_STATUS_USABLE');
    assert.equal(client.seenRevision, added.revision);
    assert.ok(added.revision > 0n);
    const found = await client.searchLearnware({});
    assert.deepEqual(found.singleResults.map((r) => r.learnware?.id), [added.learnware.id]);

    const repeated = await client.addLearnware(zip, expected.upload.semanticSpec, { clientRequestId: 'ts-upload-1' });
    assert.equal(repeated.learnware.id, added.learnware.id);
    assert.deepEqual((await client.listLearnwares()).map((lw) => lw.id), [added.learnware.id]);

    await client.deleteLearnware(added.learnware.id);
    assert.ok(client.seenRevision > added.revision);
    assert.deepEqual((await client.searchLearnware({})).singleResults, []);
    // A revision not written yet: the search waits for it until the deadline, which names the step.
    const ahead = new MarketClient(address, 2_000, 'ts-writes', client.seenRevision + 1_000_000n);
    try {
      await assert.rejects(ahead.searchLearnware({}), (error: unknown) => error instanceof MarketError && error.code === 'DEADLINE_EXCEEDED' && error.details.includes('searcher.SearchLearnwares did not answer within'));
    } finally {
      ahead.close();
    }
  } finally {
    client.close();
  }
});
