declare module "murmurhash3js-revisited" {
  interface MurmurHash3 {
    inputValidation: boolean;
    x86: { hash32(bytes: Uint8Array | number[], seed?: number): number };
  }
  const murmur: MurmurHash3;
  export default murmur;
}
