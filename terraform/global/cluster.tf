# Every georec region and its AWS region, as in regions.toml (scripts/check-deploy compares).
# Latency routing sends a client to the router of the nearest of these AWS regions.
locals {
  regions = {
    "us-west"  = "us-west-2"
    "us-east"  = "us-east-1"
    "eu-west"  = "eu-west-1"
    "ap-south" = "ap-south-1"
  }
}
