// A small typed wrapper over the generated Learnware Market gRPC client.
import * as path from 'path';
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

export interface SearchOptions {
  statSpec?: StatSpec;
  maxSearchNum?: number;
  maxResults?: number;
}

export class MarketClient {
  private readonly stub: MarketServiceClient;

  /** marketId: the named market on the server that listLearnwares and searchLearnware address
   * (learnware ids are global: getLearnware and downloadLearnware reach any market's). */
  constructor(address: string, private readonly deadlineMs = 60_000, readonly marketId = 'default') {
    const proto = loadMarketService();
    this.stub = new proto.learnware.v1.MarketService(address, grpc.credentials.createInsecure());
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
