// Calls of the Market API over HTTP/JSON (the routes of /openapi.json), with the saved token.

export interface SemanticSpec {
  data?: string[];
  task?: string[];
  library?: string[];
  scenario?: string[];
  license?: string[];
  name?: string;
  description?: string;
  input?: { dimension?: number; descriptions?: Record<string, string> };
  output?: { dimension?: number; descriptions?: Record<string, string> };
}

export interface CheckStep {
  name: string;
  passed?: boolean;
  messages?: string[];
  durationS?: number;
}

export interface LearnwareInfo {
  id: string;
  owner?: string;
  semanticSpec?: SemanticSpec;
  status?: string;
  checkReport?: { status?: string; steps?: CheckStep[]; droppedRequirements?: string[] };
  statSpecTypes?: string[];
  createdAt?: number;
  zipSize?: string;
}

export interface Tensor {
  dtype: string;
  shape: string[];
  data: string;
}

export interface StatSpec {
  type: string;
  z: Tensor;
  beta: Tensor;
  gamma: number;
  numPoints: string;
}

export interface SearchResponse {
  singleResults?: { learnware: LearnwareInfo; score?: number }[];
  multipleResults?: { learnwares: LearnwareInfo[]; weights?: number[]; score?: number }[];
  searchPath?: string;
  messages?: string[];
}

/** The allowed values of each tag field of a semantic spec ("data", "task", ...), from the market's vocabulary. */
export type Vocabulary = Record<"data" | "task" | "library" | "scenario" | "license", string[]>;

export interface MarketInfo {
  kind?: string;
  version?: string;
  learnwareCounts?: Record<string, string>;
}

export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "lwm-token";

export function token(): string {
  return localStorage.getItem(TOKEN_KEY) ?? "";
}

export function saveToken(value: string): void {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

function headers(json: boolean): Record<string, string> {
  const result: Record<string, string> = {};
  if (json) result["Content-Type"] = "application/json";
  if (token()) result["Authorization"] = `Bearer ${token()}`;
  return result;
}

async function errorOf(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { status?: string; message?: string };
    if (body.message) message = `${body.status ?? response.status}: ${body.message}`;
  } catch {
    // not a JSON error body: keep the HTTP status line
  }
  return new ApiError(response.status, message);
}

// The highest organizer revision among this page's write responses: searches send it as
// minRevision, so a search through any gateway replica sees this user's own uploads and deletions.
let seenRevision = 0n;

function sawRevision(body: unknown): void {
  const revision = (body as { revision?: string | number } | null)?.revision;
  if (revision !== undefined && BigInt(revision) > seenRevision) seenRevision = BigInt(revision);
}

/** The revision a search must wait for (proto3 JSON writes int64 as a string); undefined before any write. */
export function minRevision(): string | undefined {
  return seenRevision > 0n ? seenRevision.toString() : undefined;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response);
  const reply = (await response.json()) as T;
  sawRevision(reply);
  return reply;
}

/** Uploads a zip as the multipart form of AddLearnware, reporting the sent fraction. */
export function upload(metadata: unknown, zip: File, progress: (fraction: number) => void): Promise<{ learnware: LearnwareInfo }> {
  const form = new FormData();
  form.append("metadata", JSON.stringify(metadata));
  form.append("chunk", zip, zip.name);
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/learnwares");
    if (token()) request.setRequestHeader("Authorization", `Bearer ${token()}`);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) progress(event.loaded / event.total);
    };
    request.onload = () => {
      let body: { message?: string; status?: string } & { learnware?: LearnwareInfo } = {};
      try {
        body = JSON.parse(request.responseText);
      } catch {
        // handled below
      }
      if (request.status === 200) sawRevision(body);
      if (request.status === 200 && body.learnware) resolve({ learnware: body.learnware });
      else reject(new ApiError(request.status, body.message ? `${body.status}: ${body.message}` : `upload failed (HTTP ${request.status})`));
    };
    request.onerror = () => reject(new ApiError(0, "the market cannot be reached"));
    request.send(form);
  });
}

function base64OfFloat64(values: number[]): string {
  const view = new DataView(new ArrayBuffer(values.length * 8));
  values.forEach((value, i) => view.setFloat64(i * 8, value, true));
  let text = "";
  new Uint8Array(view.buffer).forEach((byte) => (text += String.fromCharCode(byte)));
  return btoa(text);
}

function tensorOf(values: unknown, what: string): Tensor {
  const shape: number[] = [];
  let level: unknown = values;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const flat = (Array.isArray(values) ? values.flat(Infinity) : [values]) as unknown[];
  if (flat.some((value) => typeof value !== "number") || flat.length !== shape.reduce((a, b) => a * b, 1)) {
    throw new Error(`the specification's "${what}" must be a rectangular array of numbers`);
  }
  return { dtype: "float64", shape: shape.map(String), data: base64OfFloat64(flat as number[]) };
}

const OLD_TYPE_NAMES: Record<string, string> = { RKMEStatSpecification: "RKMETableSpecification" };

/** A statistical specification file of the reference package (JSON with z, beta, gamma, num_points, type). */
export function statSpecOf(text: string, fallbackType: string): StatSpec {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error("the specification file is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || !("z" in parsed) || !("beta" in parsed)) {
    throw new Error('the specification file needs "z" and "beta" (an RKME specification saved by the learnware package)');
  }
  const type = typeof parsed.type === "string" ? parsed.type : fallbackType;
  return {
    type: OLD_TYPE_NAMES[type] ?? type,
    z: tensorOf(parsed.z, "z"),
    beta: tensorOf(parsed.beta, "beta"),
    gamma: typeof parsed.gamma === "number" ? parsed.gamma : 0.1,
    numPoints: String(typeof parsed.num_points === "number" ? parsed.num_points : 0),
  };
}
