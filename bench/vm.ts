/** VM rows of `npm run bench`: filled in from hwtest/vm once its bench hooks exist. */
export interface Row { what: string; value: number; unit: string; target?: string; note?: string }
export async function vmRows(_quick: boolean): Promise<Row[]> {
  return [{ what: "vm: skipped", value: 0, unit: "", note: "no VM bench hooks yet" }];
}
