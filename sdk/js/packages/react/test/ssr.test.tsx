import { bootstrapPayload, FlagsiteClient, type RulesetDocument } from "@flagsite/node";
import { renderToString } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { FlagsiteProvider, useFeatureFlag, useFlagDetails, useVariant } from "../src/index.js";

const doc = {
  schemaVersion: 1, environment: "t", version: 2, segments: {},
  flags: {
    dash: {
      key: "dash", version: 1, valueType: "string", variants: { control: "old", treatment: "new" }, enabled: true,
      offVariant: "control", salt: "dash", clientVisible: true,
      rules: [{ id: "r", conditions: [{ attribute: "plan", operator: "equals", values: ["pro"] }], serve: { variant: "treatment" } }],
      defaultServe: { variant: "control" },
    },
  },
} as unknown as RulesetDocument;

function Page() {
  const dash = useFeatureFlag("dash", "old");
  const variant = useVariant("dash");
  const details = useFlagDetails("dash");
  const missing = useFeatureFlag("missing", "fallback");
  return <p data-reason={details?.reason}>{`${dash}|${variant}|${missing}`}</p>;
}

describe("server rendering", () => {
  it("renders the values the Node SDK evaluated for the request", () => {
    const server = new FlagsiteClient({ bootstrap: doc, offline: true });
    for (const [plan, expected] of [["pro", "new|treatment"], ["free", "old|control"]] as const) {
      const bootstrap = bootstrapPayload(server, { targetingKey: "u", plan });
      const html = renderToString(
        <FlagsiteProvider clientKey="k" baseUrl="http://x" bootstrap={bootstrap} storage={null}>
          <Page />
        </FlagsiteProvider>,
      );
      expect(html).toContain(`${expected}|fallback`);
    }
  });

  it("renders defaults outside a provider", () => {
    expect(renderToString(<Page />)).toContain("old|null|fallback");
  });
});
