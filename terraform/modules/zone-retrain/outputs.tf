output "task_role_arn" {
  description = "Role model-sync runs as (add it to the zone's buckets' writer_role_arns when those are restricted)."
  value       = aws_iam_role.task.arn
}

output "task_definition_arn" {
  description = "Task definition of the run (start one by hand with aws ecs run-task and the security group below)."
  value       = aws_ecs_task_definition.this.arn
}

output "security_group_id" {
  description = "Security group of the task."
  value       = aws_security_group.task.id
}

output "log_group_name" {
  description = "CloudWatch log group of the runs."
  value       = aws_cloudwatch_log_group.this.name
}

output "schedule_name" {
  description = "EventBridge Scheduler schedule starting the runs."
  value       = aws_scheduler_schedule.this.name
}

output "command" {
  description = "Command of the container."
  value       = local.command
}
