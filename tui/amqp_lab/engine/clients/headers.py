"""The lab's own headers: they carry a map-reduce job from the submitter through its shards to the reducer."""

from __future__ import annotations

JOB = "x-lab-job"
JOB_TIME = "x-lab-job-ts"
SHARD = "x-lab-shard"
SHARDS = "x-lab-shards"
JOB_REPLY = "x-lab-reply"
COMPLETE = "x-lab-complete"
