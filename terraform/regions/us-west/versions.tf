terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
  }

  # Keep state remotely and locked, one key per stack, e.g.:
  #   terraform init -backend-config=bucket=my-tf-state -backend-config=key=georec/regions/<region>.tfstate \
  #                  -backend-config=region=us-west-2 -backend-config=use_lockfile=true
  # after uncommenting:
  # backend "s3" {}
}
