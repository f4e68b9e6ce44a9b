// A small typed wrapper over the generated Learnware Market gRPC client.
import * as path from 'path';
import { randomUUID } from 'crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

import type { ProtoGrpcType } from './generated/market';
import type { MarketServiceClient } from './generated/learnware/v1/MarketService';
import type { LearnwareInfo__Output } from './generated/learnware/v1/LearnwareInfo';
import type { SemanticSpec } from './generated/learnware/v1/SemanticSpec';
import type { StatSpec } from './generated/learnware/v1/StatSpec';
import type { MarketSearchLearnwareResponse__Output } from './generated/learnware/v1/MarketSearchLearnwareResponse';

export type { LearnwareInfo__Output as LearnwareInfo, SemanticSpec, StatSpec };
export type SearchResponse = MarketSearchLearnwareResponse__Output;

/** Directory holding learnware/v1/*.proto (the repository's protos/ unless LWM_PROTOS says otherwise). */
export const PROTO_DIR = process.env.LWM_PROTOS ?? path.resolve(__dirname, '../../../../protos');

/** A failed call: the gRPC status code name and the server's message. */
export class MarketError extends Error {
  constructor(readonly code: string, readonly details: string) {
    super(`${code}: ${details}`);
  }
}

function loadMarketService(): ProtoGrpcType {
  const definition = protoLoader.loadSync('learnware/v1/market.proto', {
    includeDirs: [PROTO_DIR],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
}

function asMarketError(error: grpc.ServiceError): MarketError {
  return new MarketError(grpc.status[error.code] ?? String(error.code), error.details);
}

export interface AddOptions {
  /** Wait until the market has checked the learnware (default true). */
  waitForCheck?: boolean;
  /** Id of this upload (default: a new UUID). Sending an upload again with the id of an earlier
   * one, e.g. after a lost response, returns the learnware of the first and stores nothing. */
  clientRequestId?: string;
}

/** A stored learnware and the organizer revision of the write. */
export interface Added {
  learnware: LearnwareInfo__Output;
  revision: bigint;
}

const UPLOAD_CHUNK_BYTES = 1024 * 1024;

export interface SearchOptions {
  statSpec?: StatSpec;
  maxSearchNum?: number;
  maxResults?: number;
}

export class MarketClient {
  private readonly stub: MarketServiceClient;
  private seen: bigint;

  /** marketId: the named market on the server that addLearnware, listLearnwares and searchLearnware
   * address (learnware ids are global: getLearnware and downloadLearnware reach any market's).
   * seenRevision: another client's seenRevision, so that this one's searches see its writes too. */
  constructor(address: string, private readonly deadlineMs = 60_000, readonly marketId = 'default', seenRevision = 0n) {
    const proto = loadMarketService();
    this.stub = new proto.learnware.v1.MarketService(address, grpc.credentials.createInsecure());
    this.seen = seenRevision;
  }

  /** The highest organizer revision among this client's write responses; searches send it as
   * minRevision, so they see this client's writes through any gateway replica. */
  get seenRevision(): bigint {
    return this.seen;
  }

  private saw(revision: string | number): bigint {
    const value = BigInt(revision);
    if (value > this.seen) this.seen = value;
    return value;
  }

  /** Upload a learnware zip with its semantic specification. */
  addLearnware(zip: Buffer, semanticSpec: SemanticSpec, options: AddOptions = {}): Promise<Added> {
    const metadata = {
      semanticSpec,
      zipSize: zip.length,
      waitForCheck: options.waitForCheck ?? true,
      marketId: this.marketId,
      clientRequestId: options.clientRequestId ?? randomUUID(),
    };
    return new Promise((resolve, reject) => {
      const call = this.stub.addLearnware(this.deadline(), (error, reply) =>
        error || !reply ? reject(asMarketError(error!)) : resolve({ learnware: reply.learnware!, revision: this.saw(reply.revision) }));
      call.write({ metadata });
      for (let start = 0; start < zip.length; start += UPLOAD_CHUNK_BYTES) {
        call.write({ chunk: { data: zip.subarray(start, start + UPLOAD_CHUNK_BYTES) } });
      }
      call.end();
    });
  }

  deleteLearnware(learnwareId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stub.deleteLearnware({ learnwareId }, this.deadline(), (error, reply) => {
        if (error || !reply) return reject(asMarketError(error!));
        this.saw(reply.revision);
        resolve();
      });
    });
  }

  private deadline(): grpc.CallOptions {
    return { deadline: new Date(Date.now() + this.deadlineMs) };
  }

  getLearnware(learnwareId: string): Promise<LearnwareInfo__Output> {
    return new Promise((resolve, reject) => {
      this.stub.getLearnware({ learnwareId }, this.deadline(), (error, reply) =>
        error || !reply ? reject(asMarketError(error!)) : resolve(reply.learnware!));
    });
  }

  /** Every learnware of the market, following the pages. */
  async listLearnwares(pageSize = 100): Promise<LearnwareInfo__Output[]> {
    const all: LearnwareInfo__Output[] = [];
    let pageToken = '';
    do {
      const page = await new Promise<{ learnwares: LearnwareInfo__Output[]; nextPageToken: string }>((resolve, reject) => {
        this.stub.listLearnwares({ page: { pageSize, pageToken }, marketId: this.marketId }, this.deadline(), (error, reply) =>
          error || !reply ? reject(asMarketError(error!)) : resolve(reply));
      });
      all.push(...page.learnwares);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return all;
  }

  searchLearnware(semanticSpec: SemanticSpec, options: SearchOptions = {}): Promise<SearchResponse> {
    return new Promise((resolve, reject) => {
      this.stub.searchLearnware(
        {
          semanticSpec,
          statSpecs: options.statSpec ? [options.statSpec] : [],
          maxSearchNum: options.maxSearchNum ?? 5,
          maxResults: options.maxResults ?? 10,
          marketId: this.marketId,
          minRevision: this.seen.toString(),
        },
        this.deadline(),
        (error, reply) => (error || !reply ? reject(asMarketError(error!)) : resolve(reply)),
      );
    });
  }

  /** The learnware's zip, streamed and concatenated. */
  downloadLearnware(learnwareId: string): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const call = this.stub.downloadLearnware({ learnwareId }, this.deadline());
      call.on('data', (reply) => chunks.push(Buffer.from(reply.chunk?.data ?? [])));
      call.on('error', (error: grpc.ServiceError) => reject(asMarketError(error)));
      call.on('end', () => resolve(Buffer.concat(chunks)));
    });
  }

  close(): void {
    this.stub.close();
  }
}

/** A float64 Tensor message (little-endian, C order) from a vector or rows of numbers. */
export function float64Tensor(values: number[] | number[][]): { dtype: string; shape: number[]; data: Buffer } {
  const rows = values.length && Array.isArray(values[0]);
  const flat = rows ? (values as number[][]).flat() : (values as number[]);
  const shape = rows ? [values.length, (values as number[][])[0].length] : [values.length];
  const data = Buffer.alloc(flat.length * 8);
  flat.forEach((value, i) => data.writeDoubleLE(value, i * 8));
  return { dtype: 'float64', shape, data };
}
