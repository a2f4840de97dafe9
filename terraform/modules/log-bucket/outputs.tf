output "bucket" {
  description = "Name of the log bucket."
  value       = aws_s3_bucket.this.id
  # Deliveries need the policy in place before anything points at the bucket.
  depends_on = [aws_s3_bucket_policy.this]
}

output "arn" {
  description = "ARN of the log bucket."
  value       = aws_s3_bucket.this.arn
}
