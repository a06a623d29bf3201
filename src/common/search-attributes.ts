/**
 * Custom search attributes, so the Web UI and `temporal workflow list --query` can answer "what ran, where,
 * who asked, did it work". The dev server started by scripts/services.sh registers exactly these names.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const EnvironmentKey = defineSearchAttributeKey('LlmchatEnvironment', SearchAttributeType.KEYWORD);
export const OperationKey = defineSearchAttributeKey('LlmchatOperation', SearchAttributeType.KEYWORD);
export const OutcomeKey = defineSearchAttributeKey('LlmchatOutcome', SearchAttributeType.KEYWORD);
export const VersionKey = defineSearchAttributeKey('LlmchatVersion', SearchAttributeType.KEYWORD);
export const RequestedByKey = defineSearchAttributeKey('LlmchatRequestedBy', SearchAttributeType.KEYWORD);
export const BackupIdKey = defineSearchAttributeKey('LlmchatBackupId', SearchAttributeType.KEYWORD);
export const VerificationKey = defineSearchAttributeKey('LlmchatVerification', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [
  EnvironmentKey,
  OperationKey,
  OutcomeKey,
  VersionKey,
  RequestedByKey,
  BackupIdKey,
  VerificationKey,
] as const;
