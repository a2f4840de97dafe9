# The primary store and every region bucket, as in regions.toml ([primary] and
# [regions.*].s3.bucket / cloud_region). scripts/check-deploy compares these with regions.toml.
locals {
  primary_bucket       = "georec-models"
  primary_prefix       = "georec/"
  primary_cloud_region = "us-west-2"

  regions = {
    "us-west"  = { cloud_region = "us-west-2", bucket = "georec-us-west" }
    "us-east"  = { cloud_region = "us-east-1", bucket = "georec-us-east" }
    "eu-west"  = { cloud_region = "eu-west-1", bucket = "georec-eu-west" }
    "ap-south" = { cloud_region = "ap-south-1", bucket = "georec-ap-south" }
  }
}
