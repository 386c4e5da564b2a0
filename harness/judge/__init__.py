"""Model-graded checks: a judge's prompts, answers, sampling, pairwise and calibration.

verdicts     the verdict schema of each kind (rubric, score, factuality, pairwise)
answer       how the judge is asked to answer (json_schema, json_object, last line)
             and reading its answer into a validated JudgeVerdict
prompts      the Jinja2 templates shipped in the package, overridable, with their hash
metrics      the 1–5 metrics of a score check, with anchored levels
sampling     N samples, majority or median, agreement, uncertainty
pairwise     both orders, wins only when they agree, win rate and position consistency
agreement    accuracy, Cohen's κ, weighted κ and the confusion matrix against people
"""
