// ESLint flat config for every workspace (ts/ the SDK, web/ the browser app). Generated code is not linted.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/", "**/dist/", "**/src/gen/", "**/coverage/", "**/playwright-report/", "**/test-results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // ESLint 10 lints web/ with web/eslint.config.js (the nearest config); this one covers ts/ and the root.
  { languageOptions: { parserOptions: { tsconfigRootDir: import.meta.dirname } } },
  {
    files: ["**/*.{ts,tsx}"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
